#include "config/route_keys.hpp"

#include <algorithm>

#include "config/compression_keys.hpp"
#include "handshake/mqtt_refusal.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge {

namespace {

using namespace std::chrono_literals;

// Names under which MQTT-over-WebSocket clients (mqtt.js, Paho JS) ask for MQTT packets, in any
// case (a route listing "MQTT" would still take them from a client that lowercases nothing).
bool is_mqtt_subprotocol(const std::string& p) {
  return mqtt_refusal::is_mqtt_subprotocol(text::lower(p));
}

// What a route speaks on its WebSocket, for refusals of subprotocols it would not honour.
std::string what_route_speaks(const ConfigTable& t, const std::string& adapter) {
  const toml::node* mode = t.raw().get("mode");
  const std::string m = mode != nullptr && mode->is_string() ? mode->as_string()->get() : "";
  if (adapter == "mqtt" && m == "raw") {
    return "raw payloads on fixed topics (adapter \"mqtt\", mode \"raw\")";
  }
  if (adapter == "mqtt") return "the JSON frames of docs/PROTOCOL.md (adapter \"mqtt\")";
  if (adapter == "http") return "frames for an HTTP backend (adapter \"http\")";
  if (adapter == "echo") return "echoed messages (adapter \"echo\")";
  return "the frames of adapter \"" + adapter + "\", not MQTT packets";
}

}  // namespace

std::string no_client_certificates(const std::string& route_path) {
  return "route \"" + route_path +
         "\" asks for a client certificate, but no listener verifies one: add 'client_ca_file' "
         "to a [listeners.tls] table (docs/TLS.md, mTLS)";
}

RouteConfig read_route_keys(ConfigTable& t, const ServerConfig& config) {
  RouteConfig route;
  route.path = t.required_string("path");
  if (auto problem = route_path_problem(route.path)) {
    t.fail_at("path", "route path \"" + route.path + "\" " + *problem);
  }
  // lws decodes a request's %XX escapes before its path is matched: such a route was unreachable.
  if (route.path.find('%') != std::string::npos) {
    t.fail_at("path", "route path \"" + route.path +
                          "\" must not contain '%': requests are matched after their %XX escapes "
                          "are decoded, so write the character itself");
  }
  if (route.path == kHealthPath) {
    t.fail_at("path", "route path \"" + route.path + "\" is reserved for the health endpoint");
  }
  if (route.path.starts_with(kFallbackPrefix) || route.path + "/" == kFallbackPrefix) {
    t.fail_at("path", "route path \"" + route.path + "\" is under " + std::string(kFallbackPrefix) +
                          ", which the HTTP fallback transports reserve");
  }
  if (config.find_route(route.path) != nullptr) {
    t.fail_at("path", "duplicate route path \"" + route.path + "\"");
  }
  route.adapter_name = t.required_string("adapter");
  if (auto v = t.byte_size("max_message_bytes", 1, 1ull << 30)) route.max_message_bytes = *v;
  if (auto v = t.byte_size("max_queued_bytes", 1024, 1ull << 34)) route.max_queued_bytes = *v;
  if (auto v = t.integer("max_queued_messages", 1, 100'000'000)) {
    route.max_queued_messages = static_cast<std::size_t>(*v);
  }
  route.queue_high_water_bytes = route.max_queued_bytes / 2;
  if (auto v = t.byte_size("queue_high_water_bytes", 1, 1ull << 34)) {
    if (*v > route.max_queued_bytes) {
      t.fail_at("queue_high_water_bytes",
                "'queue_high_water_bytes' must not exceed 'max_queued_bytes' (" +
                    std::to_string(route.max_queued_bytes) + ")");
    }
    route.queue_high_water_bytes = *v;
  }
  using SlowConsumer = RouteConfig::SlowConsumer;
  if (auto policy =
          t.one_of<SlowConsumer>("slow_consumer", {{"disconnect", SlowConsumer::kDisconnect},
                                                   {"drop_oldest", SlowConsumer::kDropOldest}})) {
    route.slow_consumer = *policy;
  }
  if (auto v = t.duration("ping_interval", 100ms, 24h)) route.ping_interval = *v;
  if (auto v = t.duration("idle_timeout", 100ms, 24h)) route.idle_timeout = *v;
  if (auto protocols = t.string_array("subprotocols")) {
    for (const auto& p : *protocols) {
      if (p.empty() || p.starts_with("bearer.") ||
          p.find_first_of(" ,;\"()<>@:/[]?={}\t") != std::string::npos) {
        t.fail_at("subprotocols", "subprotocol \"" + p +
                                      "\" is not a valid token (and "
                                      "bearer.* is reserved for credentials)");
      }
    }
    for (auto p = protocols->begin(); p != protocols->end(); ++p) {
      if (std::find(protocols->begin(), p, *p) != p) {
        t.fail_at("subprotocols", "subprotocol \"" + *p + "\" is listed twice");
      }
    }
    route.subprotocols = *protocols;
  }
  if (auto rate = t.integer("rate", 0, 1'000'000)) route.rate = static_cast<double>(*rate);
  if (auto burst = t.integer("burst", 1, 10'000'000)) {
    if (route.rate == 0) t.fail_at("burst", "'burst' needs a 'rate'");
    route.burst = static_cast<double>(*burst);
  }
  if (route.rate > 0 && route.burst == 0) route.burst = std::max(route.rate, 1.0);
  if (auto auth_table = t.table("auth")) {
    route.auth = auth::parse_route_auth(*auth_table, config.auth);
    route.has_own_auth = true;
    if (route.auth.client_cert && !config.verifies_client_certificates()) {
      auth_table->fail_at("client_cert", no_client_certificates(route.path));
    }
  }
  route.compression = read_compression_keys(t, false);
  route.require_client_cert = t.boolean("require_client_cert").value_or(false);
  if (route.require_client_cert && !config.verifies_client_certificates()) {
    t.fail_at("require_client_cert", no_client_certificates(route.path));
  }
  route.fallback = t.boolean("fallback").value_or(true);
  if (route.idle_timeout <= route.ping_interval) {
    t.fail_at(t.contains("idle_timeout") ? "idle_timeout" : "ping_interval",
              "'idle_timeout' must be longer than 'ping_interval' in route \"" + route.path +
                  "\", so a live peer has time to answer a ping");
  }
  return route;
}

void consume_route_core_keys(ConfigTable& options) {
  for (const char* core_key :
       {"path", "adapter", "max_message_bytes", "max_queued_bytes", "ping_interval", "idle_timeout",
        "subprotocols", "rate", "burst", "auth", "max_queued_messages", "slow_consumer",
        "queue_high_water_bytes", "compression", "compression_threshold", "compression_window_bits",
        "compression_level", "require_client_cert", "fallback"}) {
    options.consume(core_key);
  }
}

void take_adapter_subprotocols(const ConfigTable& t, RouteConfig& route) {
  const std::vector<std::string> spoken = route.adapter->subprotocols();
  if (const toml::array* offered = t.raw()["subprotocols"].as_array()) {
    for (const toml::node& p : *offered) {
      if (!p.is_string() || !is_mqtt_subprotocol(p.as_string()->get()) ||
          std::find(spoken.begin(), spoken.end(), p.as_string()->get()) != spoken.end()) {
        continue;
      }
      throw ConfigError(
          SourcePosition{t.file(), p.source().begin.line, p.source().begin.column},
          "subprotocol \"" + p.as_string()->get() +
              "\" tells MQTT-over-WebSocket clients (mqtt.js, Paho JS) that route \"" + route.path +
              "\" speaks MQTT packets, but it speaks " + what_route_speaks(t, route.adapter_name) +
              ": remove it (mode = \"passthrough\" of the mqtt adapter speaks MQTT)");
    }
  }
  // The adapter's own subprotocols are the route's too (lws must know them from the start).
  for (const std::string& name : spoken) {
    if (std::find(route.subprotocols.begin(), route.subprotocols.end(), name) ==
        route.subprotocols.end()) {
      route.subprotocols.push_back(name);
    }
  }
}

}  // namespace wsbridge
