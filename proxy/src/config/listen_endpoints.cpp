// Listener endpoints (address, port) and the check that refuses two listeners binding one socket.
#include "config/listen_endpoints.hpp"

#include <arpa/inet.h>

#include <utility>

namespace wsbridge::listen_endpoints {

Endpoint endpoint(const std::string& address, std::uint16_t port, SourcePosition where) {
  Endpoint e;
  e.family = address.find(':') == std::string::npos ? AF_INET : AF_INET6;
  inet_pton(e.family, address.c_str(), e.bytes.data());
  e.port = port;
  e.where = std::move(where);
  e.address = address;
  return e;
}

void check_endpoints(const std::vector<Endpoint>& listeners, const std::optional<Endpoint>& admin) {
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (!listeners[i].overlaps(listeners[j])) continue;
      throw ConfigError(listeners[i].where,
                        "listener " + listeners[i].text() + " overlaps the listener " +
                            listeners[j].text() + " at " + listeners[j].where.to_string() +
                            ": both would bind port " + std::to_string(listeners[i].port) +
                            (listeners[i].bytes == listeners[j].bytes
                                 ? " (the same listener twice)"
                                 : " (a wildcard address covers every address of its family)"));
    }
  }
  if (!admin) return;
  for (const auto& l : listeners) {
    if (!admin->overlaps(l)) continue;
    throw ConfigError(admin->where,
                      "[admin] " + admin->text() + " overlaps the listener " + l.text() + " at " +
                          l.where.to_string() +
                          ": the admin listener needs an address and port of its own (else "
                          "/metrics and the API answer 404 there): give it another port");
  }
}

}  // namespace wsbridge::listen_endpoints
