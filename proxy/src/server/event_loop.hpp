// A service thread's event loop: libev on epoll, which libwebsockets drives as a "foreign" loop
// (LWS_SERVER_OPTION_LIBEV), while the shard keeps its own loop turn (run_once, then its queues).
//
// Why not lws' default loop: it is poll(), and every turn passes and scans the whole descriptor
// table, so a shard holding 2,000 idle WebSockets paid for all of them on every message of the
// few busy ones (docs/ARCHITECTURE.md, "The event loop"). epoll costs what is ready.
#pragma once

#include <chrono>
#include <memory>

struct ev_loop;
struct ev_timer;
struct lws_context_creation_info;

namespace wsbridge {

class EventLoop {
 public:
  // Throws std::runtime_error when the kernel gives no epoll instance.
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Makes the context about to be created run on this loop.
  void configure(lws_context_creation_info& info);
  // The calling thread services this loop from now on (forget_descriptor's loop).
  void bind_to_this_thread();
  // One turn: waits until something is ready (a socket, an lws timer, lws_cancel_service), then
  // runs what is. lws' own deferred work (TLS bytes already decrypted, buffered rx) runs on the
  // turns after the socket event that left it.
  void run_once();
  // Makes run_once return after `delay` at the latest (replacing the wake set before), for work
  // the shard's loop checks itself after each turn. On the thread that services the loop.
  void wake_after(std::chrono::milliseconds delay);
  void cancel_wake();
  // The loop's epoll instance (-1 if it could not be found: see find_epoll_descriptor).
  int epoll_descriptor() const { return epoll_fd_; }
  // libev's loop, for watchers of the shard's own (reverse_proxy/direct_tunnel.hpp).
  struct ev_loop* ev() const {
    return loop_;
  }

 private:
  void find_epoll_descriptor();

  struct ev_loop* loop_ = nullptr;
  std::unique_ptr<struct ev_timer> wake_;
  void* foreign_loops_[1] = {nullptr};
  int epoll_fd_ = -1;
};

// Before a socket lws serves leaves lws with its number reused (handshake/upgrade_hold.hpp): the
// kernel's epoll entry follows the open socket, not the number, and libev never removes entries
// itself. Left there, the socket's next bytes would reach the loop under a number that is no
// longer theirs, and libev would rebuild its whole epoll set to get rid of them. No-op on a
// thread that serves no loop.
void forget_descriptor(int fd);

// The libev loop the calling thread services (null on a thread that serves none).
struct ev_loop* this_thread_ev_loop();

}  // namespace wsbridge
