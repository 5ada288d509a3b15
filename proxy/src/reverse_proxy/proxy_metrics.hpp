// The reverse proxy's metrics (docs/PROXY.md): responses by prefix and status class, backend
// failures by kind, relayed WebSockets open. Looked up once per label set and kept (the
// registry's lookups take a lock).
#pragma once

#include <string_view>

namespace wsbridge::reverse_proxy::proxy_metrics {

void response(std::string_view proxy, unsigned status);
void backend_error(std::string_view proxy, std::string_view kind);
void refused(std::string_view proxy, std::string_view code);
void tunnel_opened(std::string_view proxy);
void tunnel_closed(std::string_view proxy);

}  // namespace wsbridge::reverse_proxy::proxy_metrics
