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
auth::HandshakeRequest handshake_request_of(const RequestHead& head);

// Takes "bearer.<token>" offers out of Sec-WebSocket-Protocol: the credential was wsbridge's to
// check, never the backend's to see. The header goes when nothing else was offered.
void strip_bearer_offers(RequestHead& head);

// Why a relayed request's path is refused (400), or nullopt: a "." or ".." segment, literal or
// percent-encoded, a backslash, or an encoded NUL. Prefixes are matched on the path as sent, so a
// path a backend would normalize into another prefix ("/public/../admin") could pass one
// prefix's checks and reach another's pages.
std::optional<std::string> unsafe_path(std::string_view path);

// "a%20b+c" -> "a b c" ('+' is a space in a query); malformed escapes are kept as they are.
std::string percent_decode(std::string_view text);

}  // namespace wsbridge::reverse_proxy
