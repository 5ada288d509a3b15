// A backend's HTTP/1.x response head as the reverse proxy reads it, with the framing rules of
// RFC 9112 section 6.3 that tell where its body ends. Pure: unit-tested and fuzzed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "reverse_proxy/request_head.hpp"

namespace wsbridge::reverse_proxy {

struct ResponseHead {
  unsigned status = 0;         // 100-599
  std::string reason;          // the reason phrase, as sent (may be empty)
  unsigned minor_version = 1;  // HTTP/1.<minor>
  HttpHeaders headers;         // every field, in order, as sent (values trimmed)
  BodyFraming body = BodyFraming::kNone;
  std::uint64_t content_length = 0;  // kLength
  // The backend keeps the connection for another request after this response: HTTP/1.1 without
  // "Connection: close" (1.0 with "keep-alive"), and a body that does not run until the close.
  bool keep_alive = true;
};

// Parses a complete response head (find_head_end delimits it) to a request with `method`: a
// HEAD request's response and 1xx, 204 and 304 have no body; then chunked (only exactly
// "chunked" is accepted), Content-Length, or until the close. nullopt with `error` for a
// malformed head, conflicting framing, or a Transfer-Encoding other than chunked.
std::optional<ResponseHead> parse_response_head(std::string_view head, std::string_view method,
                                                std::string& error);

}  // namespace wsbridge::reverse_proxy
