// A relayed WebSocket between two plain TCP sockets, once the backend's 101 went to the browser:
// its bytes relayed straight from the shard's event loop (libev watchers of our own), not through
// lws. Each message then costs what a relay must (one readiness event, one recv(), one send()),
// without lws' dispatch, its per-socket state and our stream layer in between: on a relay that
// does nothing else per message that overhead was as much as the system calls' (BENCHMARKS.md,
// "Reverse proxy"). TLS on either side keeps the tunnel on the lws streams (their TLS is there).
//
// Back-pressure as everywhere: what a socket does not take waits in a buffer of that side, and
// the other side is not read until it went out. An end on either side (FIN, an error) ends the
// tunnel once what was read before it reached the other side, within a bound.
#pragma once

#include <ev.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wsbridge::reverse_proxy {

class DirectTunnel {
 public:
  class Owner {
   public:
    // Both sockets are closed already. `by` is "client", "backend" or "wsbridge". The owner may
    // destroy the tunnel inside this call.
    virtual void direct_tunnel_ended(std::string_view by, std::string_view why) = 0;

   protected:
    ~Owner() = default;
  };

  // Takes both sockets. `idle_timeout` 0: none. `lifetime`: the tunnel ends this long after it
  // starts (the token that opened it expires), whatever passes through it.
  DirectTunnel(int client_fd, int backend_fd, std::chrono::milliseconds idle_timeout,
               std::optional<std::chrono::milliseconds> lifetime, Owner& owner);
  ~DirectTunnel();
  DirectTunnel(const DirectTunnel&) = delete;
  DirectTunnel& operator=(const DirectTunnel&) = delete;

  // Starts relaying on the calling service thread's loop; false (nothing started, sockets still
  // ours to close) when the thread serves no loop.
  bool start();

  std::uint64_t bytes_up() const { return up_.moved; }      // browser -> backend
  std::uint64_t bytes_down() const { return down_.moved; }  // backend -> browser

 private:
  // One direction: read from `from`, written to `to`.
  struct Direction {
    DirectTunnel* tunnel = nullptr;
    int from = -1;
    int to = -1;
    const char* from_name = "";  // who ended it, when `from` does
    ev_io readable{};            // on `from`
    ev_io writable{};            // on `to`, while `pending` is not empty
    std::string pending;         // read from `from`, not yet taken by `to`
    std::size_t pending_offset = 0;
    std::uint64_t moved = 0;
    bool ended = false;  // `from` sent FIN
  };

  static void on_readable(struct ev_loop* loop, ev_io* watcher, int events);
  static void on_writable(struct ev_loop* loop, ev_io* watcher, int events);
  static void on_timer(struct ev_loop* loop, ev_timer* watcher, int events);

  void relay(Direction& d);
  void flush(Direction& d);
  // `from` sent FIN: the tunnel ends once the other direction's bytes went out too (a peer's
  // close frame, then its FIN, is the usual end).
  void half_ended(Direction& d);
  void end(std::string_view by, std::string_view why);
  // The timer for the nearer of the idle timeout and the end of the lifetime.
  void arm_timer(ev_tstamp now);
  void close_sockets();

  struct ev_loop* loop_ = nullptr;
  int client_fd_ = -1;
  int backend_fd_ = -1;
  std::chrono::milliseconds idle_timeout_;
  std::optional<std::chrono::milliseconds> lifetime_;
  Owner& owner_;
  Direction up_;    // client -> backend
  Direction down_;  // backend -> client
  ev_timer timer_{};
  ev_tstamp last_activity_ = 0;
  ev_tstamp flush_deadline_ = 0;  // after an end: the rest must have gone by then
  ev_tstamp ends_at_ = 0;         // with a lifetime: when it runs out
  bool finished_ = false;
};

}  // namespace wsbridge::reverse_proxy
