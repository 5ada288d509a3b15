// One broker connection (one Paho client) shared by every session of every route that names
// this upstream, with the subscription state of all of them.
//
// Threads: adapter callbacks (service thread) and Paho callbacks (Paho's threads) only enqueue
// events; one worker thread per upstream owns all state (sessions, the topic trie, reference
// counts, buffered publishes, retained cache) and does every Paho call. A message from the
// broker is matched once, serialized once per route, and the same Frame is sent to every
// subscriber.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "mqtt_config.hpp"
#include "session_flow.hpp"
#include "wsbridge/plugin.hpp"

namespace wsbridge::mqtt {

class Upstream {
 public:
  explicit Upstream(UpstreamConfig config);
  ~Upstream();
  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;

  const UpstreamConfig& config() const { return config_; }

  // Starts the worker, which connects (and keeps reconnecting with backoff). Idempotent; starts
  // it again after a stop.
  void start();
  // Disconnects and joins the worker. Idempotent.
  void stop();

  // The configuration (its MqttKind's id) that started this upstream last: the one that stops it
  // and counts its in-flight work, so older configurations sharing it neither stop it nor hold
  // their release back for work that is not theirs. Any thread.
  void set_owner(std::uint64_t kind) { owner_.store(kind, std::memory_order_relaxed); }
  std::uint64_t owner() const { return owner_.load(std::memory_order_relaxed); }

  // Called from adapters on their shards' service threads; they only enqueue.
  void open_session(std::shared_ptr<Connection> connection,
                    std::shared_ptr<const MqttRouteConfig> route);
  void session_message(ConnectionId id, Frame message);
  void close_session(ConnectionId id);

  // Messages from clients the upstream has not finished with (queued, or QoS 1/2 publishes not
  // yet acknowledged by the broker). Any thread.
  std::size_t in_flight() const { return unfinished_.load(std::memory_order_relaxed); }

 private:
  struct Impl;
  const UpstreamConfig config_;
  std::atomic<std::size_t> unfinished_{0};
  std::atomic<std::uint64_t> owner_{0};
  // Each open session's flow control; the adapter's callbacks come from every shard's thread.
  std::mutex flows_mutex_;
  std::unordered_map<ConnectionId, std::shared_ptr<SessionFlow>> flows_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wsbridge::mqtt
