// A relayed WebSocket is a raw byte pipe to its backend: once a 101 went through, wsbridge reads
// nothing of what the client writes into it, so every prefix rule in front of that backend is
// behind the client. A backend endpoint that answers 101 on the client's say-so (a status or
// headers taken from the request: the client chooses the Sec-WebSocket-Key, so it can compute
// the accept it wants echoed) then lets the client send plain HTTP requests for the backend's
// guarded prefixes. wsbridge cannot see such an endpoint; it can see the configurations where
// one would matter, and say so at start and at every reload. Pure: unit-tested.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "reverse_proxy/proxy_route.hpp"

namespace wsbridge::reverse_proxy {

// One warning per public prefix that relays upgrades to a backend (scheme, host and port) that
// also serves a prefix guarded by [proxy.auth], naming those prefixes and what to change.
std::vector<std::string> tunnel_exposure_warnings(
    const std::vector<std::shared_ptr<const ProxyRoute>>& proxies);

}  // namespace wsbridge::reverse_proxy
