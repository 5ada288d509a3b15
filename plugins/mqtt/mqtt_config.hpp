// Configuration of the mqtt adapter: [upstreams.NAME] tables (brokers) and the keys of routes
// with adapter = "mqtt". Parsed and validated once; shared read-only by every session.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "acl.hpp"
#include "subscription_set.hpp"
#include "wsbridge/config_table.hpp"

namespace wsbridge::mqtt {

struct UpstreamConfig {
  std::string name;
  std::string uri;  // tcp:// or mqtt://host:port, ssl:// or mqtts://host:port
  std::string client_id_prefix = "wsbridge";
  std::optional<std::string> username;
  std::optional<std::string> password;  // `password` or `password_env`
  std::chrono::seconds keepalive{30};
  int mqtt_version = 4;  // 4 = MQTT 3.1.1, 5 = MQTT 5
  // ssl:// only
  std::optional<std::string> ca_file;
  std::optional<std::string> cert_file;
  std::optional<std::string> key_file;
  bool verify_server = true;
  // The contents of those files as read at load time: a reload with a renewed certificate under
  // the same name is a change of settings (a new broker connection), not the same upstream.
  std::string tls_files;
  // Reconnect backoff: doubles from min to max, with +-20% jitter.
  std::chrono::milliseconds reconnect_min{500};
  std::chrono::milliseconds reconnect_max{std::chrono::seconds(30)};
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  // QoS 1/2 publishes held while the broker is unreachable; past this they are refused.
  std::size_t max_buffered_publishes = 1000;
  // Retained messages remembered for late subscribers of an already active filter.
  std::size_t max_retained_cache = 10000;
  // Messages a client sent that the upstream has not finished with, past which reading from that
  // client pauses (resuming at half): a slow broker slows browsers down through TCP.
  std::size_t session_window = 256;
  // QoS 1/2 publishes handed to Paho and not acknowledged yet; the rest wait in the buffer.
  // At most kMaxPublishWindow: Paho refuses more than it buffers ("No more messages can be
  // buffered") when the broker stops reading.
  std::size_t publish_window = 64;
  static constexpr std::size_t kMaxPublishWindow = 100;  // Paho's default maxBufferedMessages
  // Levels a client's topic or filter may have at the broker (the route's prefix included). A
  // broker that takes fewer may drop the whole shared connection over one client's subscribe
  // (mosquitto 2.0 does past 200 levels); 128 is EMQX's default limit and under mosquitto's.
  std::size_t max_topic_levels = 128;
  // The largest PUBLISH packet the broker takes. A broker given a larger one drops the shared
  // connection (mosquitto with max_packet_size), and a QoS 1/2 one is sent again after every
  // reconnect: so wsbridge refuses it from the client. 1 MiB is EMQX's default limit.
  std::size_t max_packet_bytes = 1024 * 1024;

  static UpstreamConfig from_table(const std::string& name, ConfigTable& table);
  // Same settings: a reload keeps the running upstream.
  bool operator==(const UpstreamConfig&) const = default;
};

// The route's `upstream` key, which must name one of `upstreams` (else a config error that lists
// the defined ones).
const UpstreamConfig& read_upstream(ConfigTable& t,
                                    const std::map<std::string, UpstreamConfig>& upstreams,
                                    std::string& name);

// A route's max_subscriptions, max_subscription_bytes and max_subscription_levels (json and
// passthrough modes); unless set, the last two follow max_subscriptions (160 bytes and 10 levels
// a filter), so raising the count alone does not leave them behind.
SubscriptionBounds read_subscription_bounds(ConfigTable& t);

// A route's list of ACL patterns under `key` (each checked with acl_pattern_problem).
std::vector<std::string> read_acl_patterns(ConfigTable& t, const std::string& key);

// The route's share of the broker topics wsbridge reserves (RouteContext::reserved_topic_prefix):
// a configuration error for a route whose ACL patterns (or topic_prefix) reach them; what its
// connections' expand_acl must keep out (empty when a topic_prefix keeps the route away anyway).
std::string reserved_prefix_of_route(ConfigTable& t, const std::string& topic_prefix,
                                     const std::vector<std::string>& allow_subscribe,
                                     const std::vector<std::string>& allow_publish,
                                     const std::string& reserved);

// kPassthrough routes are built by passthrough/passthrough_config.hpp instead.
enum class RouteMode { kJson, kRaw, kPassthrough };

struct MqttRouteConfig {
  std::string path;
  std::string upstream;
  RouteMode mode = RouteMode::kJson;
  std::string topic_prefix;                  // added towards the broker, stripped back
  std::vector<std::string> allow_subscribe;  // ACL patterns (browser topic space)
  std::vector<std::string> allow_publish;
  std::string reserved_prefix;  // reserved_prefix_of_route
  // The ACLs above expanded once for every connection, where no placeholder makes them personal
  // (expand_acl_for_everyone; set with reserved_prefix; null: expanded per connection).
  SharedAcl subscribe_for_everyone;
  SharedAcl publish_for_everyone;
  SubscriptionBounds subscriptions;  // per connection
  int max_qos = 2;                   // highest QoS a client may ask for
  // raw mode only
  std::vector<std::string> subscribe;        // filters subscribed for every connection
  std::optional<std::string> publish_topic;  // where each WebSocket message is published
  int qos = 0;                               // QoS of raw subscriptions and publishes
  bool retain = false;                       // raw publishes

  static MqttRouteConfig from_route(ConfigTable& options, const std::string& path,
                                    const std::map<std::string, UpstreamConfig>& upstreams);
};

}  // namespace wsbridge::mqtt
