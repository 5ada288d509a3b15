// The keys of a [[routes]] table that the core reads itself (docs/CONFIG.md, "Routes"); the
// rest of the table is the route's adapter's.
#pragma once

#include "config/server_config.hpp"
#include "wsbridge/config_table.hpp"

namespace wsbridge {

// The route's path, limits, queue policy, pings, subprotocols, rate, auth, compression and
// fallback; its adapter is still to be created. `config`: what is read so far (the [auth]
// settings, and the routes before this one, for duplicate paths).
RouteConfig read_route_keys(ConfigTable& t, const ServerConfig& config);

// The error for a route that asks for a TLS client certificate ([routes.auth] client_cert,
// require_client_cert) when no listener verifies one: no client could ever pass it.
std::string no_client_certificates(const std::string& route_path);

// Marks those keys as read in `options`, the adapter's view of the same table.
void consume_route_core_keys(ConfigTable& options);

// After the adapter is created: refuses an MQTT subprotocol the route lists but its adapter does
// not speak (MQTT-over-WebSocket clients would send it MQTT packets), and adds the adapter's own
// subprotocols to the route's (lws must know them from the start).
void take_adapter_subprotocols(const ConfigTable& t, RouteConfig& route);

}  // namespace wsbridge
