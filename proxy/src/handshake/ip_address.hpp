// IP address literals, as the configuration, the admin listener's Host check, TLS host-name
// verification, the trusted-proxy check and the per-address limits need them.
//
// An IPv4-mapped IPv6 address ("::ffff:10.0.0.1", what a dual-stack listener reports for an IPv4
// client) is its IPv4 address. IPv6 clients are grouped by prefix for the per-address limits: one
// host is usually given a whole /64 and can pick a new source address in it for every connection,
// so a limit per exact IPv6 address limits nobody ([limits] ipv6_prefix_length, docs/CONFIG.md).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace wsbridge {

// "127.0.0.1", "::1", "fe80::1": true; names, bracketed or ported forms: false.
inline bool is_ip_literal(const std::string& text) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

struct IpAddress {
  bool v6 = false;
  std::array<unsigned char, 16> bytes{};  // network order; an IPv4 address in the first 4
};

// An address ("10.0.0.7", "2001:db8::1", "::ffff:10.0.0.1"), or nullopt for anything else.
std::optional<IpAddress> parse_ip_address(std::string_view text);

// What the per-address limits count `address` under: an IPv4 address as it is written; an IPv6
// address's network of `ipv6_prefix_bits` ("2001:db8:0:1::/64"), or the address itself at 128;
// text that is not an address, itself.
std::string address_group(std::string_view address, unsigned ipv6_prefix_bits);

}  // namespace wsbridge
