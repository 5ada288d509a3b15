// Who may use the admin listener (/metrics, /api/v1/*), checked before any endpoint runs.
//
// The admin listener is for operators and backends on loopback or a private network, never for
// browsers. Without these checks a web page could use it through the operator's browser
// (#13.7): a cross-site `text/plain` POST needs no CORS preflight, and DNS rebinding (a hostile
// name that resolves to 127.0.0.1) makes a page's own origin read the answers. So: requests a
// browser made for another site (Origin, Sec-Fetch-Site) are refused, the Host must be an
// address literal, localhost or a configured name, API bodies must be JSON, and the API does not
// run without a token unless the configuration says so.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config/server_config.hpp"

namespace wsbridge {

struct AdminRequestHead {
  bool api = false;       // under /api/v1/
  bool has_body = false;  // Content-Length above 0, or chunked
  std::optional<std::string> host;
  std::optional<std::string> origin;
  std::optional<std::string> sec_fetch_site;
  std::optional<std::string> content_type;
};

struct AdminRefusal {
  unsigned status = 403;
  std::string code;  // for the JSON error body
  std::string message;
};

std::optional<AdminRefusal> check_admin_request(const AdminConfig& admin,
                                                const AdminRequestHead& request);

// True for the Host header values that cannot come from DNS rebinding here: IP address literals,
// "localhost", and `admin.hosts`, each with or without a port.
bool admin_host_allowed(const AdminConfig& admin, std::string_view host);

}  // namespace wsbridge
