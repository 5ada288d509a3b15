// HTTP/1.1 wire format for the client side: URLs, request serialization and an incremental
// response parser. Pure functions and state machines, no I/O, so they are unit-tested and fuzzed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wsbridge/http_client.hpp"

namespace wsbridge::http1 {

struct Url {
  bool tls = false;
  std::string host;  // without brackets for IPv6 literals
  std::uint16_t port = 0;
  std::string path;                 // "" or "/..." (no query)
  std::string host_header() const;  // host[:port] as the Host header wants it
};

// http://host[:port][/path] and https://...; no userinfo, query or fragment. nullopt + `error`.
std::optional<Url> parse_url(std::string_view text, std::string& error);

// The elements of the comma-separated lists in every field named `name`, trimmed; empty elements
// are skipped (RFC 9110 5.6.1).
std::vector<std::string_view> list_elements(const HttpHeaders& fields, std::string_view name);

// How a message's body is coded, read the same way by the reverse proxy and the HTTP client:
// 0: no Transfer-Encoding; 1: exactly "chunked"; 2: a field without a coding; 3: anything else
// (another coding, several, or chunked twice).
int transfer_coding(const HttpHeaders& fields);

// RFC 9110 9.2.2: a request that may be sent again when the connection it went out on closed
// before any answer (the backend may have acted on it: only these leave the same state twice).
bool is_idempotent_method(std::string_view method);

// The request head and body, ready to write. Adds Host, Content-Length (when there is a body or
// the method usually has one) and "Connection: keep-alive"; drops those three from `request`.
std::string serialize_request(const HttpRequest& request, const Url& url);

class ResponseParser {
 public:
  enum class State : std::uint8_t { kIncomplete, kComplete, kError };

  explicit ResponseParser(std::size_t max_body_bytes, bool head_request = false)
      : max_body_(max_body_bytes), head_request_(head_request) {}

  // Consumes bytes; stops at the end of a complete response (bytes after it are ignored and
  // make the connection not reusable: the client never pipelines, so such a server is broken).
  State feed(const char* data, std::size_t len);
  // The connection closed: completes a response delimited by the close, else an error.
  State finish();

  State state() const { return state_; }
  bool too_large() const { return too_large_; }
  const std::string& error() const { return error_; }
  // Whether the connection may carry another request after this response.
  bool keep_alive() const { return keep_alive_; }
  HttpResponse take() { return std::move(response_); }

 private:
  enum class Phase : std::uint8_t {
    kHead,
    kBody,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailers,
    kUntilClose,
    kDone
  };
  State fail(std::string message, bool too_large = false);
  State parse_head(std::string_view head);
  State body_done();

  std::size_t max_body_;
  bool head_request_;
  State state_ = State::kIncomplete;
  Phase phase_ = Phase::kHead;
  std::string line_;  // the head, or the current chunk-size / trailer line
  std::uint64_t remaining_ = 0;
  bool keep_alive_ = true;
  bool too_large_ = false;
  std::string error_;
  HttpResponse response_;
};

}  // namespace wsbridge::http1
