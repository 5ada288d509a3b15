// An asynchronous HTTP/1.1 client for adapters, run by the core on the service thread. Adapters
// never see libwebsockets: they ask the core's HttpClient (RouteContext::http_client) for a
// backend at configuration time and send requests through it from their service-thread callbacks.
// Nothing here blocks and no thread is started per request.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wsbridge {

struct HttpHeader {
  std::string name;
  std::string value;
};
using HttpHeaders = std::vector<HttpHeader>;

// The first header named `name` (ASCII case-insensitive), or nullptr.
const std::string* find_header(const HttpHeaders& headers, std::string_view name);
// The last one: where a proxy that adds its own field after the client's puts its word.
const std::string* find_last_header(const HttpHeaders& headers, std::string_view name);
// Every non-empty value of the fields named `name`, joined as one list ("a, b"; "" for none):
// RFC 9110 5.3, a list field sent as several lines is one list.
std::string joined_header(const HttpHeaders& headers, std::string_view name);
// An RFC 9110 token: what header names and methods are made of.
bool is_http_token(std::string_view text);
// True when `value` may go into a header line as it is: no CR, LF or NUL.
bool safe_header_value(std::string_view value);

struct HttpRequest {
  std::string method = "GET";
  // Path and query, appended to the backend URL's path; "" requests the backend URL itself.
  std::string target;
  // Host, Content-Length and Connection are the client's: set here they are ignored.
  HttpHeaders headers;
  std::string body;
};

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;  // as received, in order (names as the server spelled them)
  std::string body;     // de-chunked
};

enum class HttpFailure : std::uint8_t {
  kNone,
  kTimeout,      // no complete response within the request timeout
  kUnavailable,  // could not connect (refused, unreachable, TLS handshake or certificate failed)
  kTooLarge,     // the response is over max_response_bytes
  kBadResponse,  // malformed, or the connection closed before the response was complete
  kOverloaded,   // the backend's queue of waiting requests is full
  kShutdown,     // the server is stopping
};
std::string_view to_string(HttpFailure failure);

struct HttpResult {
  HttpFailure failure = HttpFailure::kNone;
  std::string detail;     // for logs and error frames when failure != kNone
  HttpResponse response;  // valid when failure == kNone (any status, 1xx excluded)
};
using HttpCallback = std::function<void(HttpResult)>;

struct HttpBackendOptions {
  std::string url;  // http://host[:port][/base] or https://...
  // The pool: at most this many connections to the backend; idle ones are kept (keep-alive)
  // for `idle_timeout` and reused first.
  std::size_t max_connections = 16;
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(30)};
  // Requests waiting for a free connection beyond this are failed with kOverloaded.
  std::size_t max_waiting = 4096;
  std::chrono::milliseconds timeout{std::chrono::seconds(10)};  // per request, from request()
  std::size_t max_response_bytes = 1024 * 1024;
  std::string ca_file;  // https: trust these CAs instead of the system's (certificates verified)
};

class HttpBackend {
 public:
  virtual ~HttpBackend() = default;
  // Service thread only. `done` runs exactly once, on the service thread, and never inside this
  // call (a request that fails at once is answered on the next loop iteration).
  virtual void request(HttpRequest request, HttpCallback done) = 0;
  virtual const std::string& url() const = 0;
  // The backend URL's path ("" for none), which every request target is appended to.
  virtual const std::string& base_path() const = 0;
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // At configuration time. Routes asking for the same URL and options share one backend (one
  // pool). Throws std::invalid_argument with a message for a bad URL or CA file.
  virtual std::shared_ptr<HttpBackend> backend(const HttpBackendOptions& options) = 0;
};

}  // namespace wsbridge
