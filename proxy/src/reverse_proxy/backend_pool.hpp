// Connections to one backend, on one shard: kept alive between requests and reused, at most the
// shard's share of the prefix's max_connections open at once, and a bounded queue of requests
// waiting for one. The core's HTTP client pool (http/pooled_backend.*) holds whole bodies, which
// a reverse proxy must never do; this pool hands out byte streams instead, and the exchange
// (client_connection.*) moves each body through in pieces.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <string>

#include "wsbridge/stream_client.hpp"

namespace wsbridge::reverse_proxy {

class BackendPool;

// Who hears a backend connection's events while it is in use.
class BackendUser {
 public:
  virtual void backend_connected() = 0;
  virtual void backend_data(std::string_view bytes) = 0;
  virtual void backend_drained() = 0;
  virtual void backend_closed(std::string_view reason) = 0;

 protected:
  ~BackendUser() = default;
};

// Someone waiting for the pool to have room (BackendPool::wait).
class BackendWaiter {
 public:
  virtual void backend_available() = 0;

 protected:
  ~BackendWaiter() = default;
};

// One connection to the backend. Its stream's events go to its user, or, while it is idle in
// the pool, to the pool (a byte or a close then ends it).
class BackendLink final : public StreamHandler {
 public:
  BackendLink(BackendPool& pool, BackendUser* user) : pool_(pool), user_(user) {}
  ~BackendLink() override;
  BackendLink(const BackendLink&) = delete;
  BackendLink& operator=(const BackendLink&) = delete;

  Stream& stream() { return *stream_; }
  bool connected() const { return connected_; }
  // It served a request before (a failure before any answer may be the backend closing it idle).
  bool reused() const { return reused_; }
  void set_user(BackendUser* user) { user_ = user; }
  BackendPool& pool() { return pool_; }

  void on_connected() override;
  void on_data(std::string_view bytes) override;
  void on_drained() override;
  void on_timer() override;
  void on_closed(std::string_view reason) override;

 private:
  friend class BackendPool;
  BackendPool& pool_;
  BackendUser* user_;
  std::unique_ptr<Stream> stream_;
  bool connected_ = false;
  bool reused_ = false;
  bool counted_ = true;  // in the pool's open count
};

class BackendPool {
 public:
  // `endpoint` opens the streams; `max_open` is this shard's share; idle ones live `keepalive`.
  BackendPool(std::shared_ptr<StreamEndpoint> endpoint, std::size_t max_open,
              std::chrono::milliseconds keepalive);
  ~BackendPool();

  // After a reload: the newest settings (the open connections stay).
  void update(std::shared_ptr<StreamEndpoint> endpoint, std::size_t max_open,
              std::chrono::milliseconds keepalive);

  // A connection for `user`: an idle one (connected: send at once) or a new one (wait for
  // backend_connected). Null when max_open are open and none is idle: wait() for room.
  std::unique_ptr<BackendLink> acquire(BackendUser& user);
  // Queues `waiter` until a connection closes or comes back; false when the queue is full.
  bool wait(BackendWaiter& waiter);
  void cancel_wait(BackendWaiter& waiter);
  // A connection that finished its exchange cleanly and may carry another.
  void give_back(std::unique_ptr<BackendLink> link);
  // A connection that became a relayed WebSocket: it leaves the pool's count (a WebSocket may
  // stay for hours; max_connections bounds requests, and the listener's limits bound WebSockets).
  void let_go(BackendLink& link);

  std::size_t open_count() const { return open_; }
  std::size_t idle_count() const { return idle_.size(); }

 private:
  friend class BackendLink;
  void link_gone();                         // a link was destroyed: room for one more
  void idle_link_ended(BackendLink& link);  // an idle link closed or expired
  void wake_one();

  std::shared_ptr<StreamEndpoint> endpoint_;
  std::size_t max_open_;
  std::chrono::milliseconds keepalive_;
  std::size_t open_ = 0;
  std::deque<std::unique_ptr<BackendLink>> idle_;  // most recently used at the back
  std::deque<BackendWaiter*> waiters_;
  bool destroying_ = false;
};

// Requests waiting for a connection beyond this many per pool are answered 503.
inline constexpr std::size_t kMaxWaitingRequests = 1024;

}  // namespace wsbridge::reverse_proxy
