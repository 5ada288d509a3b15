// A route of the mqtt adapter with mode = "passthrough": browsers speak MQTT themselves (mqtt.js,
// Paho JS) and wsbridge relays their packets to the route's broker, one broker connection per
// browser, enforcing the route's policy on the way (docs/CONFIG.md, "MQTT pass-through").
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "mqtt_config.hpp"
#include "wsbridge/config_table.hpp"

namespace wsbridge::mqtt {

struct PassthroughRouteConfig {
  std::string path;
  std::string upstream;
  std::string upstream_url;
  // Sent to the broker in every CONNECT instead of the browser's (none: no credentials).
  std::optional<std::string> service_username;
  std::optional<std::string> service_password;
  std::vector<std::string> allow_subscribe;  // ACL patterns, as in the json mode
  std::vector<std::string> allow_publish;
  std::string reserved_prefix;  // reserved_prefix_of_route
  // The ACLs above expanded once for every connection where no placeholder makes them personal
  // (expand_acl_for_everyone; set with reserved_prefix; null: expanded per connection).
  SharedAcl subscribe_for_everyone;
  SharedAcl publish_for_everyone;
  // The client id the broker sees: {user}, {client_id}, {connection_id}.
  std::string client_id = "{user}:{client_id}";
  bool disconnect_on_denied_publish = false;  // MQTT 3.1.1 (denied_publish = "disconnect")
  // A WebSocket's whole CONNECT must arrive within this of its opening (ConnectDeadlines).
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  std::chrono::seconds keepalive_min{5};
  std::chrono::seconds keepalive_max{300};
  std::size_t max_packet_bytes = 4 * 1024 * 1024;
  // What one connection may have subscribed at the broker at once (its broker connection holds
  // them; a persistent session's earlier ones are not seen).
  SubscriptionBounds subscriptions;
  double publish_rate = 0;  // PUBLISH packets per second per connection; 0: no limit
  double publish_burst = 0;

  static PassthroughRouteConfig from_route(ConfigTable& options, const std::string& path,
                                           const std::map<std::string, UpstreamConfig>& upstreams);
};

// The client id template with its placeholders filled in, so that two (user, client id) pairs
// never give one id: {user} has '%' and the characters of the text that follows it up to the
// next placeholder percent-encoded (so does {client_id} when another placeholder follows it); an
// anonymous client's is "anonymous", a user really named so is "%61nonymous", and a credential
// that names no user (a token without "sub") is "%authenticated", never the anonymous. What MQTT
// strings may not hold (control characters, noncharacters) is percent-encoded in {user} too,
// wherever it stands. The relay gives a client that sent an empty id one first ("c" and 16
// random hex digits).
std::string expand_client_id(const std::string& pattern, const std::string& user,
                             bool authenticated, const std::string& client_id,
                             const std::string& connection_id);

}  // namespace wsbridge::mqtt
