#include "auth/origin.hpp"

#include "wsbridge/text.hpp"

#include <algorithm>
#include <cctype>

namespace wsbridge::auth {

namespace {

bool valid_host_chars(std::string_view host) {
  return !host.empty() && std::all_of(host.begin(), host.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.' || c == '[' || c == ']' || c == ':';
  });
}

bool matches(std::string_view pattern, std::string_view origin) {
  const auto scheme_end = pattern.find("://");
  if (pattern.substr(0, scheme_end + 3) != origin.substr(0, scheme_end + 3)) return false;
  std::string_view p_rest = pattern.substr(scheme_end + 3);
  std::string_view o_rest = origin.substr(scheme_end + 3);
  if (!p_rest.starts_with("*.")) return p_rest == o_rest;
  // "*.example.com[:port]": the origin must end with ".example.com[:port]" and have a non-empty
  // subdomain label made of host characters before it.
  const std::string_view suffix = p_rest.substr(1);  // ".example.com[:port]"
  if (o_rest.size() <= suffix.size() || !o_rest.ends_with(suffix)) return false;
  const std::string_view sub = o_rest.substr(0, o_rest.size() - suffix.size());
  return valid_host_chars(sub) && sub.find(':') == std::string_view::npos && sub.front() != '.' &&
         sub.back() != '.';
}

}  // namespace

std::optional<std::string> origin_pattern_problem(std::string_view pattern) {
  const auto scheme_end = pattern.find("://");
  if (scheme_end == std::string_view::npos) return "must look like \"https://app.example.com\"";
  const std::string scheme = text::lower(pattern.substr(0, scheme_end));
  if (scheme != "http" && scheme != "https") return "must use http:// or https://";
  std::string_view rest = pattern.substr(scheme_end + 3);
  if (rest.empty()) return "has no host";
  if (rest.find('/') != std::string_view::npos)
    return "must not have a path (an origin is scheme://host[:port])";
  if (rest.starts_with("*.")) rest.remove_prefix(2);
  if (rest.find('*') != std::string_view::npos) return "may use '*' only as \"*.\" before a domain";
  if (!valid_host_chars(rest)) return "has an invalid host";
  return std::nullopt;
}

bool same_origin_as_host(std::string_view origin, std::string_view host, bool tls) {
  const auto scheme_end = origin.find("://");
  if (scheme_end == std::string_view::npos || host.empty()) return false;
  const std::string scheme = text::lower(origin.substr(0, scheme_end));
  if (tls && scheme != "https") return false;
  const std::string_view default_port = scheme == "https" ? ":443" : scheme == "http" ? ":80" : "";
  auto authority = [&](std::string_view a) {
    std::string out = text::lower(a);
    if (!default_port.empty() && out.ends_with(default_port)) {
      out.resize(out.size() - default_port.size());
    }
    return out;
  };
  const std::string_view origin_authority = origin.substr(scheme_end + 3);
  return !origin_authority.empty() && valid_host_chars(origin_authority) &&
         authority(origin_authority) == authority(host);
}

bool OriginPolicy::allows(const std::optional<std::string>& origin) const {
  if (!origin) return allow_missing;
  if (allowed.empty()) return true;
  const std::string o = text::lower(*origin);
  return std::any_of(allowed.begin(), allowed.end(),
                     [&](const std::string& p) { return matches(text::lower(p), o); });
}

}  // namespace wsbridge::auth
