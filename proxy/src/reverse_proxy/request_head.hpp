// A browser's HTTP/1.x request head as the reverse proxy reads it (RFC 9112 sections 2-3, 6):
// strict, because what the proxy accepts it forwards, and a head two servers read differently is
// how requests get smuggled. Pure: no I/O, unit-tested and fuzzed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "wsbridge/http_client.hpp"

namespace wsbridge::reverse_proxy {

// A request head may be this long (request line, headers and the blank line): as the guard's
// limit for heads lws reads (mask_guard::kMaxRequestHeadBytes).
inline constexpr std::size_t kMaxHeadBytes = 16 * 1024;

enum class BodyFraming : std::uint8_t {
  kNone,        // no body
  kLength,      // Content-Length bytes
  kChunked,     // Transfer-Encoding: chunked
  kUntilClose,  // responses only: the body ends when the server closes
};

struct RequestHead {
  std::string method;          // a token, as sent (case-sensitive)
  std::string target;          // origin-form: "/path?query", as sent
  unsigned minor_version = 1;  // HTTP/1.<minor>: 0 or 1
  HttpHeaders headers;         // every field, in order, names as sent, values trimmed
  BodyFraming body = BodyFraming::kNone;
  std::uint64_t content_length = 0;  // kLength
  bool keep_alive = true;          // HTTP/1.1 without "Connection: close", or 1.0 with "keep-alive"
  bool websocket_upgrade = false;  // GET with "Upgrade: websocket" and "Connection: upgrade"
  bool expect_continue = false;    // "Expect: 100-continue"
  // The target without its query.
  std::string_view path() const;
};

struct HeadError {
  unsigned status = 400;  // 400, 413 (never), 414, 431, 501 or 505
  std::string reason;     // for the response body and the log
};

// Where the head in `buffer` ends: the offset just past its blank line, or npos while it has not
// ended. Only CRLF line ends count (a bare LF makes parse_request_head fail).
std::size_t find_head_end(std::string_view buffer);
// Whether `buffer` has a line that ends in LF alone: a head that find_head_end will never end
// (RFC 9112 2.2 lets a recipient refuse it).
bool has_bare_line_feed(std::string_view buffer);

// Parses one complete head (through its blank line, as find_head_end delimits it). Refused:
// a malformed request line or field (obs-fold, whitespace before the colon, a name that is not a
// token, CR/LF/NUL in a value), a target that is not origin-form (414 when over 8 KiB), a
// version other than HTTP/1.0 or 1.1 (505), Transfer-Encoding other than exactly "chunked"
// (501), Transfer-Encoding with Content-Length, Content-Length that is not one decimal number
// (repeated identical values are one), Transfer-Encoding in an HTTP/1.0 request, a missing Host
// in HTTP/1.1, or more than one Host.
std::variant<RequestHead, HeadError> parse_request_head(std::string_view head);

}  // namespace wsbridge::reverse_proxy
