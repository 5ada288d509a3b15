// The reverse proxy's readers of untrusted bytes (proxy/src/reverse_proxy/): a browser's request
// head, a backend's response head, and the bodies that follow them, chunked or not; and the heads
// the proxy writes from what it read.
//
// Checked:
// - find_head_end is npos or just past the first "\r\n\r\n";
// - parse_request_head never crashes; a refusal has a status among 400, 414, 431, 501, 505 and a
//   reason; an accepted head has a token method, an origin-form target without whitespace,
//   controls or '#', HTTP/1.0 or 1.1, values without controls but HTAB, chunked only in 1.1 and
//   never with Content-Length, and one Host in 1.1. The head backend_request_head writes for it
//   (an untrusted peer) parses back with the same method, version, framing, length and upgrade,
//   one Host, the peer alone in X-Forwarded-For and no X-Wsbridge-* field but the route's;
// - parse_response_head (for a GET and a HEAD) never crashes; an accepted head has no body when
//   the method, 1xx, 204 or 304 say so, and does not keep the connection when its body runs to the
//   close; client_response_head of it parses back with the same status and framing;
// - BodyFollower, chunked and with a length, fed the input (what follows the head, if there is
//   one) whole, byte by byte and in pieces sized from the input, reaches the same used count,
//   end, error and payload; it never uses more than it is fed, payload <= used; a body that ends
//   at byte u ends at u for a fresh follower fed exactly those u bytes, and a shorter prefix
//   neither ends nor fails; guarded as a request's body (guard_request), a chunked one never goes
//   past its limit, stops no later, and is followed exactly as unguarded when it passes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fuzz_check.hpp"
#include "reverse_proxy/body_follower.hpp"
#include "reverse_proxy/forward_headers.hpp"
#include "reverse_proxy/request_head.hpp"
#include "reverse_proxy/response_head.hpp"
#include "wsbridge/text.hpp"

namespace {

using namespace wsbridge;
using namespace wsbridge::reverse_proxy;

[[noreturn]] void fail(const char* what, std::string_view detail) {
  wsbridge_fuzz::fail("fuzz_proxy_heads", what, {detail});
}

std::size_t count(const HttpHeaders& headers, std::string_view name) {
  std::size_t n = 0;
  for (const auto& h : headers) n += text::iequals(h.name, name) ? 1 : 0;
  return n;
}

void check_request(std::string_view head) {
  auto parsed = parse_request_head(head);
  if (const auto* error = std::get_if<HeadError>(&parsed)) {
    const unsigned s = error->status;
    if (s != 400 && s != 414 && s != 431 && s != 501 && s != 505) fail("an odd status", head);
    if (error->reason.empty()) fail("a refusal without a reason", head);
    return;
  }
  const RequestHead& r = std::get<RequestHead>(parsed);
  if (!is_http_token(r.method)) fail("a method that is not a token", head);
  if (r.target.empty() || r.target.front() != '/' || r.target.size() > 8192) {
    fail("a target that is not origin-form", head);
  }
  for (const char c : r.target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '#') fail("a bad target", head);
  }
  if (r.minor_version > 1) fail("a version other than 1.0 or 1.1", head);
  for (const auto& h : r.headers) {
    if (!is_http_token(h.name)) fail("a field name that is not a token", head);
    for (const char c : h.value) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
        fail("a control character in a value", head);
      }
    }
  }
  if (r.body == BodyFraming::kChunked &&
      (r.minor_version == 0 || count(r.headers, "content-length") != 0)) {
    fail("chunked with Content-Length or in 1.0", head);
  }
  if (r.body == BodyFraming::kUntilClose) fail("a request body until the close", head);
  const std::size_t hosts = count(r.headers, "host");
  if (hosts > 1 || (r.minor_version == 1 && hosts == 0)) fail("Host missing or repeated", head);
  if (r.websocket_upgrade && r.method != "GET") fail("an upgrade that is not a GET", head);

  // What the backend gets must read the same.
  ProxyRoute route;
  route.path = "/a";
  route.strip_prefix = true;
  route.backend.host = "backend";
  route.backend.port = 8080;
  route.backend.path = "/base";
  ForwardContext context;
  context.peer_address = context.client_address = "192.0.2.1";
  const std::string out = backend_request_head(r, route, context);
  if (find_head_end(out) != out.size()) fail("the backend head does not end where it should", out);
  auto again = parse_request_head(out);
  if (const auto* error = std::get_if<HeadError>(&again)) {
    // Only what the proxy adds may tip a head over a limit.
    if (error->status != 414 && error->status != 431) fail("the backend head is refused", out);
    return;
  }
  const RequestHead& b = std::get<RequestHead>(again);
  if (b.method != r.method || b.minor_version != r.minor_version || b.body != r.body ||
      b.content_length != r.content_length || b.websocket_upgrade != r.websocket_upgrade) {
    fail("the backend reads another request", out);
  }
  if (b.keep_alive != (r.minor_version == 1)) fail("the backend head's keep-alive", out);
  if (count(b.headers, "host") != 1) fail("not one Host for the backend", out);
  const std::string* xff = find_header(b.headers, "x-forwarded-for");
  if (count(b.headers, "x-forwarded-for") != 1 || *xff != "192.0.2.1") {
    fail("a client's X-Forwarded-For reached the backend", out);
  }
  for (const auto& h : b.headers) {
    if (text::lower(h.name).starts_with("x-wsbridge-") &&
        !text::iequals(h.name, "x-wsbridge-route")) {
      fail("a client's X-Wsbridge-* reached the backend", out);
    }
  }
}

void check_response(std::string_view head, std::string_view method, bool keep_alive) {
  std::string error;
  const auto r = parse_response_head(head, method, error);
  if (!r) {
    if (error.empty()) fail("a refusal without a reason", head);
    return;
  }
  if (r->status < 100 || r->status > 599 || r->minor_version > 1) fail("an odd status", head);
  const bool bodiless = method == "HEAD" || r->status < 200 || r->status == 204 || r->status == 304;
  if (bodiless != (r->body == BodyFraming::kNone)) fail("a body where there is none", head);
  if (r->body == BodyFraming::kUntilClose && r->keep_alive) fail("keep-alive until close", head);

  const std::string out = client_response_head(*r, keep_alive);
  if (find_head_end(out) != out.size()) {
    fail("the browser's head does not end where it should", out);
  }
  const auto b = parse_response_head(out, method, error);
  if (!b) fail("the browser's head is refused", out);
  if (b->status != r->status || b->body != r->body) fail("the browser reads another response", out);
  if (r->body == BodyFraming::kLength && b->content_length != r->content_length) {
    fail("the browser reads another length", out);
  }
  if (r->status >= 200 && !keep_alive && b->keep_alive) {
    fail("the browser keeps the connection", out);
  }
}

struct Outcome {
  std::size_t used = 0;
  bool done = false;
  bool error = false;
  std::uint64_t payload = 0;
  bool operator==(const Outcome&) const = default;
};

// Feeds `bytes` in pieces of 1 + (s % 64) bytes for the bytes s of `sizes`, cycled (none: at
// once).
Outcome follow(BodyFraming framing, std::uint64_t length, std::string_view bytes,
               std::string_view sizes, std::optional<std::uint64_t> guard = std::nullopt) {
  BodyFollower f(framing, length);
  if (guard) f.guard_request(*guard);
  Outcome o;
  std::size_t at = 0;
  std::size_t k = 0;
  do {
    std::size_t n = bytes.size() - at;
    if (!sizes.empty()) {
      n = std::min<std::size_t>(n, 1 + static_cast<unsigned char>(sizes[k++ % sizes.size()]) % 64);
    }
    const auto step = f.feed(bytes.data() + at, n);
    if (step.used > n) fail("used more than it was fed", bytes);
    if (!step.done && !step.error && step.used != n) fail("stopped short of the end", bytes);
    if (step.done != f.done() || step.error != !f.error().empty()) fail("a step disagrees", bytes);
    o.used += step.used;
    at += n;
    o.done = step.done;
    o.error = step.error;
  } while (!o.done && !o.error && at < bytes.size());
  o.payload = f.payload_bytes();
  if (o.payload > o.used) fail("more payload than bytes", bytes);
  return o;
}

void check_body(BodyFraming framing, std::uint64_t length, std::string_view bytes) {
  const Outcome whole = follow(framing, length, bytes, "");
  if (!(follow(framing, length, bytes, std::string_view("\0", 1)) == whole)) {
    fail("byte by byte differs", bytes);
  }
  if (!(follow(framing, length, bytes, bytes.substr(0, 16)) == whole)) {
    fail("in pieces differs", bytes);
  }
  if (framing == BodyFraming::kChunked) {
    // As a request's body (guard_request): never past the limit, stopped no later than the
    // unguarded follower, and a body it lets through is followed exactly as without it.
    constexpr std::uint64_t kMax = 32;
    const Outcome guarded = follow(framing, length, bytes, "", kMax);
    if (guarded.payload > kMax) fail("a guarded body went past its limit", bytes);
    if (guarded.used > whole.used) fail("a guarded body went further", bytes);
    if (!guarded.error && !(guarded == whole))
      fail("the guard changed a body it let through", bytes);
    if (!(follow(framing, length, bytes, std::string_view("\0", 1), kMax) == guarded)) {
      fail("guarded byte by byte differs", bytes);
    }
  }
  if (whole.done) {
    const Outcome exact = follow(framing, length, bytes.substr(0, whole.used), "");
    if (!exact.done || exact.used != whole.used) fail("the end moved", bytes);
    if (whole.used > 0) {
      const Outcome shorter = follow(framing, length, bytes.substr(0, whole.used - 1), "");
      if (shorter.done || shorter.error) fail("a prefix of a body ended or failed", bytes);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::size_t end = find_head_end(bytes);
  if (end != std::string_view::npos) {
    if (end < 4 || bytes.substr(end - 4, 4) != "\r\n\r\n" ||
        bytes.substr(0, end - 1).find("\r\n\r\n") != std::string_view::npos) {
      fail("find_head_end is not after the first blank line", bytes);
    }
  } else if (bytes.find("\r\n\r\n") != std::string_view::npos) {
    fail("find_head_end missed a blank line", bytes);
  }
  const std::string_view head = end == std::string_view::npos ? bytes : bytes.substr(0, end);
  check_request(head);
  check_response(head, "GET", size % 2 == 0);
  check_response(head, "HEAD", size % 3 == 0);
  const std::string_view body = end == std::string_view::npos ? bytes : bytes.substr(end);
  check_body(BodyFraming::kChunked, 0, body);
  check_body(BodyFraming::kLength, size > 0 ? data[0] : 0, body);
  return 0;
}
