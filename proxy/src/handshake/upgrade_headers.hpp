// The upgrade headers libwebsockets 4.1.6 would refuse by closing the connection without a word:
// checked first, so the client gets a 400 that says why (RFC 6455 4.2.2: a server that does not
// accept a handshake answers with an HTTP error), and the refusal is counted and logged.
//
// lws copies Connection and Sec-WebSocket-Protocol into 127-byte buffers and gives up on longer
// values (server-ws.c, lws_process_ws_upgrade); it needs an "upgrade" token in Connection; it
// gives up at a subprotocol name of 64 bytes or more, or at an element that is not a token, before
// the first name it knows (it selects that one and reads no further); and it
// builds its Sec-WebSocket-Extensions answer from at most 254 bytes of the offer
// (lws_extension_server_handshake). Real clients stay far inside these: Chromium offers
// "permessage-deflate; client_max_window_bits" and subprotocols of a few bytes. Bearer tokens
// offered as subprotocols are not counted: the head filter takes them out before lws reads the
// header (bearer_subprotocol.hpp).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wsbridge {

// The values as lws holds them (repeated lines joined with ","); nullopt: the header is absent.
struct UpgradeHeaders {
  std::optional<std::string_view> connection;
  std::optional<std::string_view> protocols;  // Sec-WebSocket-Protocol, bearer entries removed
  std::size_t extensions_length = 0;          // Sec-WebSocket-Extensions
  // Whether lws knows a subprotocol of this name (any route's); null: none.
  std::function<bool(std::string_view)> known_protocol;
};

// Why lws would drop this upgrade unanswered; nullopt when it would not.
std::optional<std::string> upgrade_headers_problem(const UpgradeHeaders& headers);

// The subprotocol lws will select among `offered` (Sec-WebSocket-Protocol, split): the first one
// it knows, of any route's. bearer.<token> entries are no protocol; `offered_any` says whether
// anything else was offered.
std::optional<std::string> lws_selected_subprotocol(
    const std::vector<std::string>& offered,
    const std::function<bool(std::string_view)>& known_protocol, bool& offered_any);

// A route's subprotocols as a refusal names them ("a, b"; "" for none).
std::string joined_subprotocols(const std::vector<std::string>& route_subprotocols);
// The refusal (400) of an offer without a subprotocol of the route's: a first upgrade or a resume.
std::string unsupported_subprotocol_reason(const std::vector<std::string>& route_subprotocols);

}  // namespace wsbridge
