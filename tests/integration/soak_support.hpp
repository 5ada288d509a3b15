// What every soak client uses (soak_test.cpp and its workers): failures reported from worker
// threads, the worker threads themselves, and the JSON protocol of the mqtt routes.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "soak_probes.hpp"
#include "support/mosquitto.hpp"
#include "wsbridge_instance.hpp"

namespace wsbridge::testing::soak {

// ---- failures from worker threads --------------------------------------------------------------

// gtest assertions belong on the main thread: workers report here, and a failure stops the
// load early so the test ends quickly with the first few reasons.
class Failures {
 public:
  void add(const std::string& what) {
    std::lock_guard lock(mutex_);
    if (list_.size() < 20) list_.push_back(what);
    ++count_;
    failed_ = true;
  }
  bool any() const { return failed_.load(); }
  std::string report() const {
    std::lock_guard lock(mutex_);
    std::string out = std::to_string(count_) + " failure(s):\n";
    for (const auto& s : list_) out += "  " + s + "\n";
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> list_;
  int count_ = 0;
  std::atomic<bool> failed_{false};
};

// Joins the threads however the scope ends, after asking them to stop.
struct Workers {
  std::atomic<bool>& stop;
  std::vector<std::thread> threads;
  void spawn(std::function<void()> f) { threads.emplace_back(std::move(f)); }
  void join() {
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
    threads.clear();
  }
  ~Workers() {
    stop = true;
    join();
  }
};

// ---- JSON-protocol helpers ---------------------------------------------------------------------

nlohmann::json next_json(WsClient& ws, std::chrono::milliseconds timeout);
nlohmann::json await_reply(WsClient& ws, const nlohmann::json& id,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10));
WsClient open_mqtt(const WsbridgeInstance& server, const std::string& path, bool deflate);
void subscribe_ok(WsClient& ws, const std::string& filter, int qos, const nlohmann::json& id);
void close_cleanly(WsClient& ws);
bool wait_upstream_up(const WsbridgeInstance& server);
void expect_fresh_client_served(const WsbridgeInstance& server, const Mosquitto& broker,
                                const std::string& topic);

}  // namespace wsbridge::testing::soak
