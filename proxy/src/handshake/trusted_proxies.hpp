// [server] trusted_proxies (docs/DEPLOY.md): the balancers in front of wsbridge, whose
// X-Forwarded-For names the client. Behind one, every connection comes from the balancer's
// address: the per-address limit would count the balancer, and the logs and the admin API would
// show it. Only what a trusted proxy appended counts: a client can put anything in the header it
// sends, so the client is the rightmost address that is not itself a trusted proxy.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wsbridge {

class TrustedProxies {
 public:
  // Addresses ("10.0.0.7", "::1") and networks ("10.0.0.0/8", "fd00::/8"); nullopt with the
  // offending entry described in `problem` for anything else.
  static std::optional<TrustedProxies> parse(const std::vector<std::string>& entries,
                                             std::string* problem);

  bool empty() const { return networks_.empty(); }
  bool trusts(std::string_view address) const;

  // The client's address for a connection from `peer` carrying `forwarded_for` (the
  // X-Forwarded-For header, repeated headers joined by commas): `peer` unless it is trusted;
  // then, walking the header from its right end, the first address that is not trusted (or the
  // leftmost, when all are). An entry that is not an address stops the walk: what it hides is
  // not vouched for.
  std::string client_of(const std::string& peer, std::string_view forwarded_for) const;

 private:
  struct Network {
    bool v6 = false;
    std::array<unsigned char, 16> bytes{};
    unsigned prefix = 0;  // bits
  };
  std::vector<Network> networks_;
};

}  // namespace wsbridge
