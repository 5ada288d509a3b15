// The deadline for a pass-through connection's CONNECT (mqtt_connect_timeout): a WebSocket that
// sends no CONNECT, or never finishes one, is closed once it passed. The relay cannot time it
// itself: its only timer is its broker connection's, which CONNECT opens, and the WebSocket's
// idle_timeout counts pongs as activity, so such a connection would stay open for good.
//
// One thread per route sleeps until the oldest deadline; it closes the connection through its
// handle (Connection::close is safe from any thread), and the adapter's on_close ends the relay
// on its shard as for any other close. The deadline is the same for every connection of a route,
// so the watch list is a queue in deadline order.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "wsbridge/plugin.hpp"

namespace wsbridge::mqtt {

class ConnectDeadlines {
 public:
  explicit ConnectDeadlines(std::chrono::milliseconds timeout) : timeout_(timeout) {}
  ~ConnectDeadlines();
  ConnectDeadlines(const ConnectDeadlines&) = delete;
  ConnectDeadlines& operator=(const ConnectDeadlines&) = delete;

  // Any thread. Watches a connection that just opened; the caller sets the flag returned once its
  // CONNECT arrived whole. (The thread starts with the first watch.)
  std::shared_ptr<std::atomic<bool>> watch(const std::shared_ptr<Connection>& connection);

 private:
  struct Watched {
    std::chrono::steady_clock::time_point deadline;
    std::weak_ptr<Connection> connection;
    std::shared_ptr<std::atomic<bool>> connected;
  };
  void run();

  const std::chrono::milliseconds timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Watched> watched_;  // in deadline order
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace wsbridge::mqtt
