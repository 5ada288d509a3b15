// What a relayed request shows the authenticator: the same credential sources as an upgrade to
// a WebSocket route (Authorization, the query parameter, the cookie, a "bearer.<token>"
// subprotocol) read from the head the proxy parsed itself. Pure: unit-tested.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "auth/authenticator.hpp"
#include "reverse_proxy/request_head.hpp"

namespace wsbridge::reverse_proxy {

// The head's Authorization, Cookie, decoded query arguments, Sec-WebSocket-Protocol offers and
// (for an upgrade only: Origin allowlists guard WebSockets, not pages) Origin.
// `peer_trusted`: the connection comes from one of [server] trusted_proxies, whose
// X-Forwarded-Host names the host the browser asked for (the same-origin test of an upgrade's
// cookie and client certificate).
auth::HandshakeRequest handshake_request_of(const RequestHead& head, bool peer_trusted = false);

// Takes "bearer.<token>" offers out of Sec-WebSocket-Protocol: the credential was wsbridge's to
// check, never the backend's to see. The header goes when nothing else was offered.
void strip_bearer_offers(RequestHead& head);

// "a%20b+c" -> "a b c" ('+' is a space in a query); malformed escapes are kept as they are.
std::string percent_decode(std::string_view text);

}  // namespace wsbridge::reverse_proxy
