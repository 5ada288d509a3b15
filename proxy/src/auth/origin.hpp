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

struct OriginPolicy {
  std::vector<std::string> allowed;  // empty: any origin
  bool allow_missing = true;         // non-browser clients send no Origin

  // Whether a request with this Origin header (nullopt: none sent) may connect. Comparison is
  // case-insensitive; the port must match exactly (no port in the pattern: none in the origin).
  bool allows(const std::optional<std::string>& origin) const;
  bool restricts() const { return !allowed.empty() || !allow_missing; }
};

}  // namespace wsbridge::auth
