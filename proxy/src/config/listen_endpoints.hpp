// Where listeners bind, and the check that no two of them (the admin listener included) would bind
// the same address and port.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "wsbridge/config_table.hpp"

namespace wsbridge::listen_endpoints {

// One address:port a listener binds. Two endpoints overlap when they bind the same port of the
// same family and one address covers the other (equal, or one is the wildcard). IPv6 listeners
// are IPV6_V6ONLY, so "::" does not cover IPv4 addresses.
struct Endpoint {
  std::string address;  // as written
  int family = AF_INET;
  std::array<unsigned char, sizeof(in6_addr)> bytes{};  // as bound: "::1" equals "0::1"
  std::uint16_t port = 0;
  SourcePosition where;  // of its 'port'

  std::string text() const {
    return (family == AF_INET6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
  }
  bool wildcard() const {
    return std::all_of(bytes.begin(), bytes.end(), [](unsigned char b) { return b == 0; });
  }
  bool overlaps(const Endpoint& other) const {
    return port == other.port && family == other.family &&
           (bytes == other.bytes || wildcard() || other.wildcard());
  }
};

// The endpoint `address` (an IP literal) and `port` bind; `where` is its 'port' in the config.
Endpoint endpoint(const std::string& address, std::uint16_t port, SourcePosition where);

// Refuses a listener (or the admin listener) that would bind where another one already does:
// lws would quietly serve both from one socket, so the second one's endpoints would answer 404.
// Throws ConfigError.
void check_endpoints(const std::vector<Endpoint>& listeners, const std::optional<Endpoint>& admin);

}  // namespace wsbridge::listen_endpoints
