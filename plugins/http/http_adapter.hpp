// The http adapter: a realtime front for HTTP backends (docs/PROTOCOL.md, "http routes").
//   message mode: each WebSocket message is POSTed to the backend URL, in order per connection;
//                 a 2xx answer's body comes back as a frame of the same type.
//   rpc mode:     {"type":"request",...} frames become HTTP requests (allowed methods and path
//                 prefixes only), up to max_in_flight per connection, answered as they complete.
// Plus the optional on_connect admission hook and on_disconnect notification. Everything runs on
// the service thread through the core's HttpClient: nothing blocks, no thread per request.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <unordered_map>
#include <variant>

#include "http_config.hpp"
#include "rpc.hpp"
#include "wsbridge/plugin.hpp"

namespace wsbridge::http {

class HttpAdapter final : public Adapter {
 public:
  HttpAdapter(HttpRouteConfig config, std::shared_ptr<HttpBackend> backend,
              std::shared_ptr<HttpBackend> connect_hook,
              std::shared_ptr<HttpBackend> disconnect_hook, unsigned shards = 1);

  void on_open(const std::shared_ptr<Connection>& connection) override;
  void on_message(const std::shared_ptr<Connection>& connection, Frame message) override;
  void on_close(const std::shared_ptr<Connection>& connection, const CloseInfo& info) override;
  void on_drained(const std::shared_ptr<Connection>& connection) override;
  void on_rate_limited(const std::shared_ptr<Connection>& connection,
                       const Frame& message) override;
  bool wants_admission() const override { return connect_hook_ != nullptr; }
  void admit(AdmissionRequest request, AdmissionCallback done) override;

  // Messages accepted from clients and not sent to the backend yet (waiting their turn); those
  // sent are the core HTTP client's to count. Any thread.
  std::size_t outstanding() const { return outstanding_.load(std::memory_order_relaxed); }

 private:
  // One unit of work: a message to POST (message mode) or a checked call (rpc mode).
  using Work = std::variant<Frame, RpcCall>;

  struct ConnState {
    std::shared_ptr<Connection> connection;
    std::deque<Work> waiting;
    std::size_t waiting_bytes = 0;  // what `waiting` keeps of the client's input (hold_inbound)
    std::size_t in_flight = 0;
    std::uint64_t next_request = 0;
    bool open = true;
    bool paused = false;
    bool queued_for_slot = false;  // in slot_waiters_
    // Its answers passed the route's queue_high_water_bytes (the client is not reading them): no
    // new request starts and the client is paused until they drained (on_drained).
    bool answers_backed_up = false;
  };

  void pump(const std::shared_ptr<ConnState>& state);
  void start(const std::shared_ptr<ConnState>& state, Work work);
  void finished(const std::shared_ptr<ConnState>& state);
  void update_flow(ConnState& state);
  HttpHeaders identity_headers(ConnState& state);
  void answer_message(ConnState& state, FrameKind kind, HttpResult result);
  void answer_rpc(ConnState& state, const nlohmann::json& id, HttpResult result);
  void reply(ConnState& state, Frame frame);

  const HttpRouteConfig config_;
  const RpcPolicy policy_;
  const std::shared_ptr<HttpBackend> backend_;
  const std::shared_ptr<HttpBackend> connect_hook_;
  const std::shared_ptr<HttpBackend> disconnect_hook_;
  const std::string request_id_prefix_;  // random per adapter: ids stay unique across restarts
  // Callbacks come from every shard's thread at once, and a connection's requests must be made and
  // answered on its own shard: so the route's state is kept per shard, each shard with its share
  // of max_concurrent, and never touched from another.
  struct ShardState {
    std::unordered_map<ConnectionId, std::shared_ptr<ConnState>> states;
    std::deque<std::weak_ptr<ConnState>> slot_waiters;  // connections waiting for route capacity
    std::size_t route_in_flight = 0;
  };
  ShardState& here() { return shards_[std::min<std::size_t>(current_shard(), shards_.size() - 1)]; }
  std::vector<ShardState> shards_;
  std::size_t max_concurrent_per_shard_;
  std::atomic<std::size_t> outstanding_{0};
};

}  // namespace wsbridge::http
