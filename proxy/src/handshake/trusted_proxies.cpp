#include "handshake/trusted_proxies.hpp"

#include <charconv>
#include <cstring>

#include "handshake/ip_address.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge {

namespace {

using text::trim;

bool all_digits(std::string_view s) {
  if (s.empty() || s.size() > 5) return false;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// An X-Forwarded-For entry: an address, or an address with the client's port as some balancers
// write it ("203.0.113.7:51234": Azure Application Gateway; "[2001:db8::1]:51234",
// "[2001:db8::1]"). Anything else (RFC 7239's "unknown", an obfuscated name) is not an address.
std::optional<IpAddress> forwarded_address(std::string_view entry) {
  if (auto address = parse_ip_address(entry)) return address;
  if (!entry.empty() && entry.front() == '[') {
    const auto close = entry.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view rest = entry.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !all_digits(rest.substr(1)))) return std::nullopt;
    auto address = parse_ip_address(entry.substr(1, close - 1));
    if (!address || entry.substr(1, close - 1).find(':') == std::string_view::npos) {
      return std::nullopt;  // ("[10.0.0.1]" is no form anyone writes)
    }
    return address;
  }
  const auto colon = entry.find(':');
  if (colon == std::string_view::npos || entry.find(':', colon + 1) != std::string_view::npos ||
      !all_digits(entry.substr(colon + 1))) {
    return std::nullopt;
  }
  auto address = parse_ip_address(entry.substr(0, colon));
  if (!address || address->v6) return std::nullopt;
  return address;
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
    const auto address = forwarded_address(entry);
    if (!address) break;
    // (Shown without a port, IPv4-mapped forms as their IPv4 address.)
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(address->v6 ? AF_INET6 : AF_INET, address->bytes.data(), text, sizeof text);
    client = text;
    if (!trusts(client)) break;
  }
  return client;
}

}  // namespace wsbridge
