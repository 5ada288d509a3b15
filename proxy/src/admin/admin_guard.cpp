#include "admin/admin_guard.hpp"

#include "wsbridge/text.hpp"

#include <algorithm>
#include <cctype>

#include "handshake/ip_address.hpp"

namespace wsbridge {

namespace {

bool all_digits(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

// "name[:port]" or "[v6][:port]" -> the name or address, lower case; nullopt when malformed.
std::optional<std::string> host_name(std::string_view host) {
  if (host.starts_with('[')) {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view rest = host.substr(close + 1);
    if (!rest.empty() && !(rest.starts_with(':') && all_digits(rest.substr(1)))) {
      return std::nullopt;
    }
    return text::lower(host.substr(1, close - 1));
  }
  const auto colon = host.rfind(':');
  if (colon != std::string_view::npos) {
    if (!all_digits(host.substr(colon + 1))) return std::nullopt;
    host = host.substr(0, colon);
  }
  if (host.empty()) return std::nullopt;
  return text::lower(host);
}

// "application/json" with optional parameters ("; charset=utf-8").
bool json_content_type(std::string_view value) {
  return text::iequals(text::trim(value.substr(0, value.find(';'))), "application/json");
}

}  // namespace

bool admin_host_allowed(const AdminConfig& admin, std::string_view host) {
  const auto name = host_name(host);
  if (!name) return false;
  if (is_ip_literal(*name) || *name == "localhost") return true;
  return std::any_of(admin.hosts.begin(), admin.hosts.end(),
                     [&](const std::string& h) { return text::iequals(h, *name); });
}

std::optional<AdminRefusal> check_admin_request(const AdminConfig& admin,
                                                const AdminRequestHead& request) {
  if (!request.host) return AdminRefusal{400, "bad_request", "a Host header is required"};
  if (!admin_host_allowed(admin, *request.host)) {
    return AdminRefusal{
        403, "host_not_allowed",
        "Host \"" + *request.host + "\" is not an address, localhost or one of [admin] hosts"};
  }
  if (request.origin) {
    return AdminRefusal{403, "cross_site", "requests from web pages (with Origin) are refused"};
  }
  if (request.sec_fetch_site && *request.sec_fetch_site != "none" &&
      *request.sec_fetch_site != "same-origin") {
    return AdminRefusal{403, "cross_site",
                        "requests made by web pages for other sites are refused"};
  }
  if (!request.api) return std::nullopt;
  if (!admin.token && !admin.allow_api_without_token) {
    return AdminRefusal{403, "api_disabled",
                        "the admin API needs a token: set [admin] token_env (or "
                        "allow_api_without_token = true on a trusted network)"};
  }
  if (request.has_body && (!request.content_type || !json_content_type(*request.content_type))) {
    return AdminRefusal{415, "unsupported_media_type", "the body must be application/json"};
  }
  return std::nullopt;
}

}  // namespace wsbridge
