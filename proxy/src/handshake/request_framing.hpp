// Where a request on the public port ends, decided before anything serves it.
//
// A request whose body length is ambiguous is where request smuggling starts: a proxy in front
// of wsbridge reads it one way, lws another, and the rest of the bytes become a second request
// that the proxy never saw (#13.8). RFC 9112 6.3 says to refuse such a request and close the
// connection. lws 4.1.6 does not decode chunked request bodies at all (it would parse the body as
// the next request), so any Transfer-Encoding is refused too; an upgrade has no body at all.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace wsbridge {

struct FramingRefusal {
  unsigned status = 400;
  std::string reason;
};

// `content_lengths`: each Content-Length header as received (several when repeated).
std::optional<FramingRefusal> request_framing_problem(
    const std::vector<std::string>& content_lengths,
    const std::optional<std::string>& transfer_encoding, bool upgrade);

// The body length those Content-Length values give ("5", " 5 ", "5, 5", repeated headers) when
// request_framing_problem serves them; nullopt when there is none or they are refused.
std::optional<unsigned long long> agreed_content_length(
    const std::vector<std::string>& content_lengths);

}  // namespace wsbridge
