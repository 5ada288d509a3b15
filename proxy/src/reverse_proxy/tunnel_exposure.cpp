// Public prefixes whose relayed WebSockets reach a backend that guarded prefixes share
// (tunnel_exposure.hpp says why that is worth a warning).
#include "reverse_proxy/tunnel_exposure.hpp"

namespace wsbridge::reverse_proxy {

namespace {

bool same_backend(const ProxyRoute& a, const ProxyRoute& b) {
  return a.backend.tls == b.backend.tls && a.backend.port == b.backend.port &&
         a.backend.host == b.backend.host;
}

}  // namespace

std::vector<std::string> tunnel_exposure_warnings(
    const std::vector<std::shared_ptr<const ProxyRoute>>& proxies) {
  std::vector<std::string> warnings;
  for (const auto& open : proxies) {
    if (!open->websocket || open->has_auth) continue;
    std::string guarded;
    for (const auto& other : proxies) {
      if (other == open || !other->has_auth || !same_backend(*open, *other)) continue;
      guarded += (guarded.empty() ? "\"" : ", \"") + other->path + "\"";
    }
    if (guarded.empty()) continue;
    warnings.push_back(
        "[[proxy]] \"" + open->path + "\" relays WebSocket upgrades without [proxy.auth] to " +
        open->backend.host_header() + ", which also serves " + guarded +
        " behind [proxy.auth]: a relayed WebSocket is a raw pipe to that backend, so an endpoint "
        "there that answers 101 on the client's say-so would let unauthenticated requests "
        "through it. Unless \"" +
        open->path +
        "\" needs WebSockets, set websocket = false there; else give the guarded prefixes a "
        "backend of their own (docs/PROXY.md)");
  }
  return warnings;
}

}  // namespace wsbridge::reverse_proxy
