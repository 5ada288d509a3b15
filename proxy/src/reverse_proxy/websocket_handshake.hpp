// The two halves of an RFC 6455 opening handshake as the reverse proxy relays them: the browser's
// upgrade request, checked before it goes to a backend, and the backend's 101, checked before
// the connection becomes a tunnel. Pure: unit-tested.
//
// Why the proxy checks what the browser checks anyway: once it relays a 101, the connection is a
// raw byte pipe to the backend, past every [[proxy]] prefix rule and its auth. A backend endpoint
// that can be made to answer a bare 101 (a status taken from a query parameter, a health check
// that reflects an upstream's status, an upgrade it refuses but answers 101 for) would otherwise
// open that pipe to a client that then writes plain HTTP requests for guarded prefixes on the
// same backend ("WebSocket smuggling"). A 101 is only a WebSocket when it carries the
// Sec-WebSocket-Accept computed from this request's key, which a bare status reflection does not
// produce. (An endpoint that also echoes headers can: the client picks the key. What wsbridge can
// see of that risk, its configuration, is warned about: tunnel_exposure.hpp.)
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "reverse_proxy/request_head.hpp"
#include "reverse_proxy/response_head.hpp"

namespace wsbridge::reverse_proxy {

// What is wrong with an upgrade request's WebSocket fields (RFC 6455 4.2.1), or nullopt: exactly
// one Sec-WebSocket-Key, the base64 of 16 bytes; exactly one Sec-WebSocket-Version, "13" (426
// with the version we speak otherwise, as 4.2.2 says).
std::optional<HeadError> websocket_request_problem(const RequestHead& request);

// The Sec-WebSocket-Accept a server must answer `key` with: base64(SHA-1(key + the GUID)).
std::string websocket_accept_for(std::string_view key);

// What makes the backend's 101 not the WebSocket answer to `request`, or nullopt: the request
// must have been an upgrade (a 101 to anything else is a backend switching protocols unasked),
// its Upgrade
// must name websocket, its Connection upgrade, and its one Sec-WebSocket-Accept be the request
// key's (RFC 6455 4.1, the client's checks, items 2-4).
std::optional<std::string> websocket_switch_problem(const ResponseHead& response,
                                                    const RequestHead& request);

}  // namespace wsbridge::reverse_proxy
