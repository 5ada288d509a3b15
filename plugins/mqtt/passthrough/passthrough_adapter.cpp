#include "passthrough/passthrough_adapter.hpp"

#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "passthrough/connect_deadlines.hpp"
#include "passthrough/passthrough_config.hpp"
#include "passthrough/passthrough_metrics.hpp"
#include "passthrough/relay.hpp"

namespace wsbridge::mqtt {

namespace {

class PassthroughAdapter final : public Adapter {
 public:
  PassthroughAdapter(std::shared_ptr<const PassthroughRouteConfig> route,
                     std::shared_ptr<StreamEndpoint> endpoint,
                     std::shared_ptr<SessionOwners> session_owners, unsigned shards)
      : route_(std::move(route)),
        endpoint_(std::move(endpoint)),
        metrics_(PassthroughMetrics::for_route(route_->path)),
        connect_deadlines_(route_->connect_timeout),
        session_owners_(std::move(session_owners)),
        relays_(shards) {}

  std::vector<std::string> subprotocols() const override { return {"mqtt", "mqttv3.1"}; }

  void on_open(const std::shared_ptr<Connection>& connection) override {
    auto relay = std::make_unique<Relay>(connection, route_, *endpoint_, metrics_);
    relay->track_sessions(session_owners_.get());
    relays()[connection->id()] = {std::move(relay), connect_deadlines_.watch(connection)};
  }
  void on_message(const std::shared_ptr<Connection>& connection, Frame message) override {
    Session* session = find(connection->id());
    if (session == nullptr) return;
    session->relay->from_client(message);
    if (!session->relay->awaiting_connect()) session->connected->store(true);
  }
  void on_close(const std::shared_ptr<Connection>& connection, const CloseInfo&) override {
    relays().erase(connection->id());  // its broker connection closes (the will, if any, fires)
  }
  void on_drained(const std::shared_ptr<Connection>& connection) override {
    if (Session* session = find(connection->id())) session->relay->client_drained();
  }
  // The route's own rate limit counts WebSocket messages; MQTT's is publish_rate (the relay's).
  void on_rate_limited(const std::shared_ptr<Connection>& connection, const Frame&) override {
    (void)connection;
  }

 private:
  struct Session {
    std::unique_ptr<Relay> relay;
    std::shared_ptr<std::atomic<bool>> connected;  // (set: its CONNECT deadline is off)
  };
  // Each shard's relays, touched only by that shard's thread.
  std::unordered_map<ConnectionId, Session>& relays() {
    return relays_[std::min<std::size_t>(current_shard(), relays_.size() - 1)];
  }
  Session* find(ConnectionId id) {
    auto& map = relays();
    const auto it = map.find(id);
    return it == map.end() ? nullptr : &it->second;
  }

  const std::shared_ptr<const PassthroughRouteConfig> route_;
  const std::shared_ptr<StreamEndpoint> endpoint_;
  PassthroughMetrics metrics_;
  ConnectDeadlines connect_deadlines_;
  // The broker's, shared with every route to it (outlives the relays, declared after it).
  const std::shared_ptr<SessionOwners> session_owners_;
  std::vector<std::unordered_map<ConnectionId, Session>> relays_;
};

}  // namespace

std::unique_ptr<Adapter> make_passthrough_adapter(
    ConfigTable& options, const RouteContext& context,
    const std::map<std::string, UpstreamConfig>& upstreams) {
  PassthroughRouteConfig config =
      PassthroughRouteConfig::from_route(options, context.path, upstreams);
  config.reserved_prefix = reserved_prefix_of_route(
      options, "", config.allow_subscribe, config.allow_publish, context.reserved_topic_prefix);
  config.subscribe_for_everyone =
      expand_acl_for_everyone(config.allow_subscribe, config.reserved_prefix);
  config.publish_for_everyone =
      expand_acl_for_everyone(config.allow_publish, config.reserved_prefix);
  auto route = std::make_shared<const PassthroughRouteConfig>(std::move(config));
  const UpstreamConfig& upstream = upstreams.at(route->upstream);
  StreamOptions stream;
  stream.url = upstream.uri;
  stream.ca_file = upstream.ca_file.value_or("");
  stream.cert_file = upstream.cert_file.value_or("");
  stream.key_file = upstream.key_file.value_or("");
  stream.verify_server = upstream.verify_server;
  stream.connect_timeout = upstream.connect_timeout;
  std::shared_ptr<StreamEndpoint> endpoint;
  try {
    endpoint = context.stream_client->endpoint(stream);
  } catch (const std::invalid_argument& e) {
    options.fail_at("upstream", "upstream \"" + route->upstream + "\": " + e.what());
  }
  return std::make_unique<PassthroughAdapter>(std::move(route), std::move(endpoint),
                                              SessionOwners::for_broker(upstream.uri),
                                              std::max(1u, context.shards));
}

}  // namespace wsbridge::mqtt
