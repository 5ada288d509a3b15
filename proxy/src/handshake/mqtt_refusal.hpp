// An MQTT-over-WebSocket client (mqtt.js, Paho JS, MQTTX) on a route that does not speak MQTT.
//
// Refusing its upgrade with an HTTP status tells such a client nothing: browsers hide the status
// from scripts, so mqtt.js retried forever without an error event and Paho JS said "Socket
// error:undefined" (#13.16). Instead the core accepts the `mqtt` subprotocol, answers the
// client's CONNECT with a CONNACK that refuses it (MQTT 5: with a Reason String saying what the
// route speaks), and closes with 1008 and the same reason: every such client reports a connect
// error its user can read.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace wsbridge::mqtt_refusal {

// The subprotocol names MQTT-over-WebSocket clients offer.
bool is_mqtt_subprotocol(std::string_view name);

// The whole size of the MQTT packet `bytes` begins with (fixed header included), once its fixed
// header has arrived; nullopt while it has not. A malformed length counts as complete (0): there
// is nothing more worth waiting for.
std::optional<std::size_t> packet_size(std::string_view bytes);

// The CONNACK refusing `connect` (one MQTT CONNECT packet, as received): "Server unavailable"
// in the client's protocol version (3.1, 3.1.1 or 5, with `reason` as Reason String in 5).
// Empty when `connect` is not a CONNECT packet.
std::string connack_for(std::string_view connect, std::string_view reason);

}  // namespace wsbridge::mqtt_refusal
