// permessage-deflate negotiation (RFC 7692 section 7.1) for the shared mode: the client's offers
// in Sec-WebSocket-Extensions, the first one we can honour, and the response header value.
//
// The response always carries server_no_context_takeover (every server message is deflated on
// its own, so one compressed frame serves every session) and client_no_context_takeover (a
// server may add it to any accepted offer, and the client must then compress each message on its
// own: section 7.1.1.2), so one inflater per service thread serves every client. libwebsockets
// 4.1.6's own negotiation cannot be used for this: it echoes only the value-less parameters the
// client sent, never answers server_max_window_bits (which RFC 7692 7.1.2.1 requires), and keys
// its inflater reset off server_no_context_takeover.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wsbridge::deflate_offer {

struct Agreement {
  // The window we may compress with (the client's server_max_window_bits, within ours). 8 can be
  // agreed but zlib cannot produce raw deflate with it: such a session is sent uncompressed
  // frames (always allowed) and its compressed messages are still inflated.
  int server_window_bits = 15;
  std::string response;  // the Sec-WebSocket-Extensions value to answer with
};

// `header`: every Sec-WebSocket-Extensions value of the request, joined with ", ".
// `window_bits`: the most we compress with (9..15). An offer with an unknown, repeated or invalid
// parameter is declined (RFC 7692 5: decline, not fail) and the next one tried; nullopt when no
// offer is acceptable.
std::optional<Agreement> negotiate(std::string_view header, int window_bits);

}  // namespace wsbridge::deflate_offer
