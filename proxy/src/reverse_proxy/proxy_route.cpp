// A [[proxy]] prefix and the paths it covers (proxy_route.hpp, docs/PROXY.md "One path space").
#include "reverse_proxy/proxy_route.hpp"

namespace wsbridge::reverse_proxy {

bool ProxyRoute::covers(std::string_view request_path) const {
  if (path == "/") return true;
  // "/api" covers "/api" and "/api/..." but not "/apix": a prefix ends at a segment boundary.
  return request_path.starts_with(path) &&
         (request_path.size() == path.size() || request_path[path.size()] == '/');
}

}  // namespace wsbridge::reverse_proxy
