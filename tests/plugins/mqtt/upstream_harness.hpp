// Drives one mqtt::Upstream directly, without the core: fake Connections stand for browser
// sessions (the test thread plays the service thread), and a real mosquitto is the broker. What
// the worker sends to a session is recorded as Frames, so a test can check what arrived and
// whether two sessions got the very same buffer.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/eventually.hpp"
#include "support/mosquitto.hpp"
#include "upstream.hpp"

namespace wsbridge::mqtt::testing {

using namespace std::chrono_literals;
using nlohmann::json;
using wsbridge::testing::Mosquitto;

// A browser session as the upstream's worker sees it: it records every Frame sent to it.
// send() and close() come from the worker thread, the waits from the test thread.
class FakeConnection final : public Connection {
 public:
  FakeConnection() : id_(next_id_.fetch_add(1)) {}
  ConnectionId id() const override { return id_; }
  const Identity& identity() const override { return identity_; }
  SendResult send(Frame frame) override {
    {
      std::unique_lock lock(mutex_);
      if (holding_) {  // the worker (or whoever sends) stops here until release_sends()
        stopped_in_send_ = true;
        changed_.notify_all();
        changed_.wait(lock, [&] { return !holding_; });
        stopped_in_send_ = false;
      }
      frames_.push_back(std::move(frame));
    }
    changed_.notify_all();
    return SendResult::kQueued;
  }
  // From now on send() blocks its caller until release_sends(): a test holds the upstream's
  // worker inside a delivery so that events pile up behind it in a known order.
  void hold_sends() {
    std::lock_guard lock(mutex_);
    holding_ = true;
  }
  // Whether a sender is stopped in send() now, or is within `timeout`.
  bool wait_stopped_in_send(std::chrono::milliseconds timeout = 5s) const {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return stopped_in_send_; });
  }
  void release_sends() {
    {
      std::lock_guard lock(mutex_);
      holding_ = false;
    }
    changed_.notify_all();
  }
  void close(CloseCode code, std::string_view reason) override {
    {
      std::lock_guard lock(mutex_);
      close_code_ = code;
      close_reason_ = reason;
    }
    changed_.notify_all();
  }
  bool is_open() const override { return true; }
  void pause_reading(bool) override {}

  std::vector<Frame> frames() const {
    std::lock_guard lock(mutex_);
    return frames_;
  }
  std::size_t received() const {
    std::lock_guard lock(mutex_);
    return frames_.size();
  }
  // The first frame from the `from`th on, received so far or within `timeout`, whose JSON
  // satisfies `match`.
  std::optional<Frame> wait_for(const std::function<bool(const json&)>& match,
                                std::chrono::milliseconds timeout = 5s,
                                std::size_t from = 0) const {
    std::unique_lock lock(mutex_);
    std::optional<Frame> found;
    changed_.wait_for(lock, timeout, [&] {
      for (std::size_t i = from; i < frames_.size(); ++i) {
        if (match(json::parse(frames_[i].payload(), nullptr, false))) {
          found = frames_[i];
          return true;
        }
      }
      return false;
    });
    return found;
  }
  // Every frame received, one per line, for failure messages.
  std::string dump() const {
    std::string out;
    for (const Frame& f : frames()) out.append(f.payload()).push_back('\n');
    return out;
  }
  // Messages received on `topic` (as this session's route shows it), in arrival order.
  std::vector<json> messages(const std::string& topic) const {
    std::vector<json> out;
    for (const Frame& f : frames()) {
      json j = json::parse(f.payload(), nullptr, false);
      if (j.is_object() && j.value("type", "") == "message" && j.value("topic", "") == topic) {
        out.push_back(std::move(j));
      }
    }
    return out;
  }

 private:
  static inline std::atomic<ConnectionId> next_id_{1};
  const ConnectionId id_;
  Identity identity_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<Frame> frames_;
  bool holding_ = false;
  bool stopped_in_send_ = false;
  std::optional<CloseCode> close_code_;
  std::string close_reason_;
};

inline auto is_type(std::string type) {
  return [type = std::move(type)](const json& j) {
    return j.is_object() && j.value("type", "") == type;
  };
}
inline auto is_reply(std::string type, json id) {
  return [type = std::move(type), id = std::move(id)](const json& j) {
    return j.is_object() && j.value("type", "") == type && j.contains("id") && j["id"] == id;
  };
}
inline auto is_status(std::string upstream) {
  return [upstream = std::move(upstream)](const json& j) {
    return j.is_object() && j.value("type", "") == "status" && j.value("upstream", "") == upstream;
  };
}

// Polls for state without a notification (tests/support/eventually.hpp).
using wsbridge::testing::eventually;

// A JSON route allowing everything, with an optional topic prefix.
inline std::shared_ptr<const MqttRouteConfig> json_route(std::string prefix = "") {
  auto route = std::make_shared<MqttRouteConfig>();
  route->path = "/mqtt";
  route->mode = RouteMode::kJson;
  route->topic_prefix = std::move(prefix);
  route->allow_subscribe = {"#"};
  route->allow_publish = {"#"};
  return route;
}

// A running Upstream on a fresh broker; each test names its upstream (the name labels metrics).
class UpstreamHarness {
 public:
  explicit UpstreamHarness(int mqtt_version = 4, std::size_t max_buffered = 1000) {
    UpstreamConfig config;
    config.name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    config.uri = broker.uri();
    config.mqtt_version = mqtt_version;
    config.client_id_prefix = "unit";
    // Quick reconnects keep the outage tests short.
    config.reconnect_min = 50ms;
    config.reconnect_max = 200ms;
    config.connect_timeout = 2s;
    config.max_buffered_publishes = max_buffered;
    upstream = std::make_unique<Upstream>(config);
    upstream->start();
  }
  ~UpstreamHarness() {
    for (auto& c : open_) upstream->close_session(c->id());
    upstream->stop();
  }

  // Kills the broker and waits until the session is told (a session opened before the upstream
  // first connected was told "down" once already).
  void outage(const std::shared_ptr<FakeConnection>& c) {
    const std::size_t mark = c->received();
    broker.kill();
    ASSERT_TRUE(c->wait_for(is_status("down"), 5s, mark)) << c->dump();
  }
  void restart(const std::shared_ptr<FakeConnection>& c) {
    const std::size_t mark = c->received();
    broker.start();  // same port
    ASSERT_TRUE(c->wait_for(is_status("up"), 10s, mark)) << c->dump();
  }

  // Opens a session and returns at once: it holds what open_session sent it before returning.
  std::shared_ptr<FakeConnection> open_now(
      std::shared_ptr<const MqttRouteConfig> route = json_route()) {
    auto c = std::make_shared<FakeConnection>();
    upstream->open_session(c, std::move(route));
    open_.push_back(c);
    return c;
  }
  // Opens a session and waits until it is told the broker is up.
  std::shared_ptr<FakeConnection> open(
      std::shared_ptr<const MqttRouteConfig> route = json_route()) {
    auto c = open_now(std::move(route));
    EXPECT_TRUE(c->wait_for(is_status("up"), 10s)) << "the upstream did not connect";
    return c;
  }
  void close(const std::shared_ptr<FakeConnection>& c) {
    upstream->close_session(c->id());
    std::erase(open_, c);
  }
  void request(const std::shared_ptr<FakeConnection>& c, const json& j) {
    upstream->session_message(c->id(), Frame::text(j.dump()));
  }
  // Sends a request with `id` and waits for its ack.
  void acked(const std::shared_ptr<FakeConnection>& c, json j, const std::string& id) {
    j["id"] = id;
    request(c, j);
    ASSERT_TRUE(c->wait_for(is_reply("ack", id))) << "no ack for " << j.dump();
  }
  void subscribe(const std::shared_ptr<FakeConnection>& c, const std::string& filter,
                 const std::string& id, int qos = 0) {
    acked(c, {{"type", "subscribe"}, {"topic", filter}, {"qos", qos}}, id);
  }
  void unsubscribe(const std::shared_ptr<FakeConnection>& c, const std::string& filter,
                   const std::string& id) {
    acked(c, {{"type", "unsubscribe"}, {"topic", filter}}, id);
  }
  // A QoS 1 publish from `c`, acknowledged by the broker. The broker reads one client's packets
  // in order, so once this is acked it has handled every packet the upstream sent before it.
  void barrier(const std::shared_ptr<FakeConnection>& c) {
    const std::string id = "barrier-" + std::to_string(++barriers_);
    acked(c, {{"type", "publish"}, {"topic", "barrier"}, {"payload", id}, {"qos", 1}}, id);
  }

  // The broker's log lines for one UNSUBSCRIBE of `filter` (mosquitto logs each filter of a
  // SUBSCRIBE as "\tFILTER (QoS n)" and of an UNSUBSCRIBE as "\tFILTER").
  std::size_t subscribes(const std::string& filter) const {
    return broker.count("\t" + filter + " (QoS");
  }
  std::size_t unsubscribes(const std::string& filter) const {
    return broker.count("\t" + filter + "\n");
  }

  Mosquitto broker;
  std::unique_ptr<Upstream> upstream;

 private:
  std::vector<std::shared_ptr<FakeConnection>> open_;
  int barriers_ = 0;
};

}  // namespace wsbridge::mqtt::testing
