// Where a request on the public port ends, decided before anything serves it.
//
// A request whose body length is ambiguous is where request smuggling starts: a proxy in front
// of wsbridge reads it one way, lws another, and the rest of the bytes become a second request
// that the proxy never saw (#13.8). RFC 9112 6.3 says to refuse such a request and close the
// connection. lws 4.1.6 does not decode chunked request bodies at all (it would parse the body as
// the next request), so any Transfer-Encoding is refused too; an upgrade has no body at all. And a
// POST, PUT or PATCH without Content-Length, whose body is empty by RFC 9112 6.3, is read by lws
// as a body up to 100 MiB: the next request on the connection would go into it unanswered.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wsbridge {

struct FramingRefusal {
  unsigned status = 400;
  std::string reason;
};

// What the request is, for its body.
enum class RequestBodyKind : std::uint8_t {
  kUpgrade,         // a WebSocket upgrade: no body at all
  kLengthIfSaid,    // GET, DELETE, OPTIONS...: a body only where Content-Length says one
  kLengthRequired,  // POST, PUT, PATCH: without Content-Length lws reads on to 100 MiB
};

// `content_lengths`: each Content-Length header as received (several when repeated).
std::optional<FramingRefusal> request_framing_problem(
    const std::vector<std::string>& content_lengths,
    const std::optional<std::string>& transfer_encoding, RequestBodyKind kind);

// The body length those Content-Length values give ("5", " 5 ", "5, 5", repeated headers) when
// request_framing_problem serves them; nullopt when there is none or they are refused.
std::optional<unsigned long long> agreed_content_length(
    const std::vector<std::string>& content_lengths);

}  // namespace wsbridge
