// The mqtt adapter's pass-through mode: the route speaks MQTT itself (subprotocols "mqtt" and
// "mqttv3.1"), and each connection gets a Relay with its own broker connection.
#pragma once

#include <map>
#include <memory>

#include "mqtt_config.hpp"
#include "wsbridge/plugin.hpp"

namespace wsbridge::mqtt {

// Builds the adapter of a mode = "passthrough" route (reads the route's keys from `options`).
std::unique_ptr<Adapter> make_passthrough_adapter(
    ConfigTable& options, const RouteContext& context,
    const std::map<std::string, UpstreamConfig>& upstreams);

}  // namespace wsbridge::mqtt
