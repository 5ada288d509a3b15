#include "handshake/trusted_proxies.hpp"

#include <charconv>
#include <cstring>

#include "handshake/ip_address.hpp"

namespace wsbridge {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<TrustedProxies> TrustedProxies::parse(const std::vector<std::string>& entries,
                                                    std::string* problem) {
  TrustedProxies proxies;
  for (const std::string& entry : entries) {
    const auto slash = entry.find('/');
    const auto address = parse_ip_address(std::string_view(entry).substr(0, slash));
    Network n;
    bool ok = address.has_value();
    if (ok) {
      n.v6 = address->v6;
      n.bytes = address->bytes;
      n.prefix = n.v6 ? 128 : 32;
    }
    if (ok && slash != std::string::npos) {
      const std::string_view bits = std::string_view(entry).substr(slash + 1);
      unsigned value = 0;
      const auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), value);
      ok = !bits.empty() && ec == std::errc() && end == bits.data() + bits.size() &&
           value <= n.prefix;
      n.prefix = value;
    }
    if (!ok) {
      if (problem != nullptr) {
        *problem = "\"" + entry +
                   "\" is not an IP address or network (e.g. \"10.0.0.7\", \"10.0.0.0/8\", "
                   "\"fd00::/8\")";
      }
      return std::nullopt;
    }
    proxies.networks_.push_back(n);
  }
  return proxies;
}

bool TrustedProxies::trusts(std::string_view text) const {
  const auto address = parse_ip_address(text);
  if (!address) return false;
  for (const Network& n : networks_) {
    if (n.v6 != address->v6) continue;
    const unsigned whole = n.prefix / 8;
    const unsigned rest = n.prefix % 8;
    if (std::memcmp(n.bytes.data(), address->bytes.data(), whole) != 0) continue;
    const unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
    if (rest != 0 && ((n.bytes[whole] ^ address->bytes[whole]) & mask) != 0) continue;
    return true;
  }
  return false;
}

std::string TrustedProxies::client_of(const std::string& peer,
                                      std::string_view forwarded_for) const {
  if (!trusts(peer)) return peer;
  std::string client = peer;
  while (!forwarded_for.empty()) {
    const auto comma = forwarded_for.rfind(',');
    const std::string_view entry =
        trim(comma == std::string_view::npos ? forwarded_for : forwarded_for.substr(comma + 1));
    forwarded_for = comma == std::string_view::npos ? "" : forwarded_for.substr(0, comma);
    const auto address = parse_ip_address(entry);
    if (!address) break;
    // (Shown as the proxy wrote it, IPv4-mapped forms as their IPv4 address.)
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(address->v6 ? AF_INET6 : AF_INET, address->bytes.data(), text, sizeof text);
    client = text;
    if (!trusts(client)) break;
  }
  return client;
}

}  // namespace wsbridge
