// The mqtt adapter: browsers subscribe and publish to MQTT brokers. Routes name an upstream
// ([upstreams.NAME]); every route on one upstream shares its single broker connection, which a
// reload keeps when the upstream's settings did not change (upstream_registry.hpp).
#include <atomic>
#include <map>

#include "mqtt_config.hpp"
#include "passthrough/passthrough_adapter.hpp"
#include "protocol.hpp"
#include "upstream.hpp"
#include "upstream_registry.hpp"
#include "wsbridge/adapter_registry.hpp"
#include "wsbridge/bounded_json.hpp"

namespace wsbridge::mqtt {
namespace {

class MqttAdapter final : public Adapter {
 public:
  MqttAdapter(std::shared_ptr<Upstream> upstream, std::shared_ptr<const MqttRouteConfig> route)
      : upstream_(std::move(upstream)), route_(std::move(route)) {}

  // Each callback only hands over to the upstream's worker: nothing here blocks.
  void on_open(const std::shared_ptr<Connection>& connection) override {
    upstream_->open_session(connection, route_);
  }
  void on_message(const std::shared_ptr<Connection>& connection, Frame message) override {
    upstream_->session_message(connection->id(), std::move(message));
  }
  void on_close(const std::shared_ptr<Connection>& connection, const CloseInfo&) override {
    upstream_->close_session(connection->id());
  }
  void on_dropped(const std::shared_ptr<Connection>& connection, std::uint64_t count) override {
    if (route_->mode == RouteMode::kRaw) return;
    connection->send(dropped_frame(count));
  }
  void on_rate_limited(const std::shared_ptr<Connection>& connection,
                       const Frame& message) override {
    if (route_->mode == RouteMode::kRaw) return;  // no error frames; sustained excess closes
    std::optional<nlohmann::json> id;
    if (message.is_text()) {
      auto doc = bounded_json::parse(message.payload());
      if (doc.is_object() && doc.contains("id") &&
          (doc["id"].is_string() || doc["id"].is_number())) {
        id = doc["id"];
      }
    }
    connection->send(error_frame(id, "rate_limited", "too many messages: slow down"));
  }

 private:
  const std::shared_ptr<Upstream> upstream_;
  const std::shared_ptr<const MqttRouteConfig> route_;
};

class MqttKind final : public AdapterKind {
 public:
  void configure_section(ConfigTable& top_level, std::string_view section) override {
    for (auto& [name, table] : top_level.named_tables(section)) {
      configs_.emplace(name, UpstreamConfig::from_table(name, table));
    }
  }

  std::unique_ptr<Adapter> create_route(ConfigTable& options,
                                        const RouteContext& context) override {
    const toml::node* mode = options.raw().get("mode");
    if (mode != nullptr && mode->value<std::string>() == "passthrough") {
      // Browsers speak MQTT themselves; each gets its own broker connection (no shared upstream).
      return make_passthrough_adapter(options, context, configs_);
    }
    MqttRouteConfig config = MqttRouteConfig::from_route(options, context.path, configs_);
    config.reserved_prefix =
        reserved_prefix_of_route(options, config.topic_prefix, config.allow_subscribe,
                                 config.allow_publish, context.reserved_topic_prefix);
    config.subscribe_for_everyone =
        expand_acl_for_everyone(config.allow_subscribe, config.reserved_prefix);
    config.publish_for_everyone =
        expand_acl_for_everyone(config.allow_publish, config.reserved_prefix);
    auto route = std::make_shared<const MqttRouteConfig>(std::move(config));
    auto& upstream = upstreams_[route->upstream];
    if (!upstream) upstream = acquire_upstream(configs_.at(route->upstream));
    return std::make_unique<MqttAdapter>(upstream, std::move(route));
  }

  // Only upstreams that some route uses are connected. One kept from the previous configuration
  // is running already; this configuration becomes its owner.
  void start() override {
    for (auto& [name, upstream] : upstreams_) {
      upstream->start();
      upstream->set_owner(id_);
    }
  }
  // This configuration is released (or the server stops): stop what no newer one has taken over.
  void stop() override {
    for (auto& [name, upstream] : upstreams_) {
      if (upstream->owner() == id_) upstream->stop();
    }
  }
  // Client messages not finished upstream: queued, or QoS 1/2 publishes awaiting their ack. An
  // upstream a newer configuration took over counts there.
  std::size_t in_flight() const override {
    std::size_t n = 0;
    for (const auto& [name, upstream] : upstreams_) {
      if (upstream->owner() == id_) n += upstream->in_flight();
    }
    return n;
  }

 private:
  static inline std::atomic<std::uint64_t> next_id_{1};
  const std::uint64_t id_ = next_id_.fetch_add(1);
  std::map<std::string, UpstreamConfig> configs_;
  std::map<std::string, std::shared_ptr<Upstream>> upstreams_;
};

}  // namespace
}  // namespace wsbridge::mqtt

void wsbridge_register_mqtt(wsbridge::AdapterRegistry& registry) {
  registry.add("mqtt", [] { return std::make_unique<wsbridge::mqtt::MqttKind>(); }, {"upstreams"});
}
