#include "handshake/ip_address.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace wsbridge {

std::optional<IpAddress> parse_ip_address(std::string_view text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  const std::string s(text);
  IpAddress a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) return a;
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a.bytes.data(), kMapped, 12) == 0) {
    std::memmove(a.bytes.data(), a.bytes.data() + 12, 4);
    std::memset(a.bytes.data() + 4, 0, 12);
    return a;
  }
  a.v6 = true;
  return a;
}

std::string address_group(std::string_view address, unsigned ipv6_prefix_bits) {
  auto parsed = parse_ip_address(address);
  if (!parsed) return std::string(address);
  char text[INET6_ADDRSTRLEN] = {0};
  if (!parsed->v6) {
    inet_ntop(AF_INET, parsed->bytes.data(), text, sizeof text);
    return text;
  }
  if (ipv6_prefix_bits >= 128) {
    inet_ntop(AF_INET6, parsed->bytes.data(), text, sizeof text);
    return text;
  }
  for (unsigned bit = ipv6_prefix_bits; bit < 128; ++bit) {
    parsed->bytes[bit / 8] &= static_cast<unsigned char>(~(0x80u >> (bit % 8)));
  }
  inet_ntop(AF_INET6, parsed->bytes.data(), text, sizeof text);
  return std::string(text) + "/" + std::to_string(ipv6_prefix_bits);
}

}  // namespace wsbridge
