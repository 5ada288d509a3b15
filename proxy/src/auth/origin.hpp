// Origin allowlists (RFC 6454 origins as browsers send them in the Origin header).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wsbridge::auth {

// nullopt when `pattern` is a usable allowlist entry: "scheme://host[:port]" with scheme http or
// https, or "scheme://*.domain[:port]" (any subdomain, at any depth, not the domain itself).
std::optional<std::string> origin_pattern_problem(std::string_view pattern);

// Whether a page of `origin` ("https://app.example.com[:port]") is on the server its request
// named in Host (`host`, "app.example.com[:port]"): host and port alike, case-insensitively,
// with the origin's scheme's default port (80, 443) the same as none. The scheme is compared
// only for a request that came over TLS (`tls`: the page must be https): behind a balancer
// that ends TLS, an https page's request arrives over http.
bool same_origin_as_host(std::string_view origin, std::string_view host, bool tls = false);

struct OriginPolicy {
  std::vector<std::string> allowed;  // empty: any origin
  bool allow_missing = true;         // non-browser clients send no Origin

  // Whether a request with this Origin header (nullopt: none sent) may connect. Comparison is
  // case-insensitive; the port must match exactly (no port in the pattern: none in the origin).
  bool allows(const std::optional<std::string>& origin) const;
  bool restricts() const { return !allowed.empty() || !allow_missing; }
  bool lists_origins() const { return !allowed.empty(); }
};

// Any origin, and requests without one: a listener without an allowlist.
inline const OriginPolicy kAnyOrigin{};

}  // namespace wsbridge::auth
