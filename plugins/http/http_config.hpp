// A route of the http adapter, read from its [[routes]] table (docs/CONFIG.md, "http routes").
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "wsbridge/config_table.hpp"
#include "wsbridge/http_client.hpp"

namespace wsbridge::http {

enum class Mode : std::uint8_t {
  kMessage,  // each WebSocket message is POSTed to the backend URL; 2xx bodies come back
  kRpc,      // JSON request frames become HTTP requests, answered by response frames
};

struct HttpRouteConfig {
  std::string path;  // the route's path, for logs
  Mode mode = Mode::kMessage;
  HttpBackendOptions backend;        // url, pool, timeout, response size limit, CA file
  HttpHeaders static_headers;        // added to every request to the backend
  std::size_t max_concurrent = 256;  // requests in flight to the backend for this route
  std::size_t max_in_flight = 8;     // per connection, rpc mode (message mode keeps order: 1)
  // Requests a connection may have waiting; beyond it, the core stops reading from the client
  // until half of them went out (rx flow control).
  std::size_t max_queued = 64;
  std::vector<std::string> methods;                 // rpc: allowed methods (upper case)
  std::vector<std::string> paths;                   // rpc: allowed path prefixes
  std::vector<std::string> client_headers;          // rpc: trusted headers clients may set
  std::optional<HttpBackendOptions> on_connect;     // admission hook (POST)
  std::optional<HttpBackendOptions> on_disconnect;  // notification (POST)

  static HttpRouteConfig from_route(ConfigTable& options, const std::string& path,
                                    const std::string& config_dir);
};

}  // namespace wsbridge::http
