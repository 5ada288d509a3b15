// A lingering close, as web servers do it: a connection wsbridge closes while its client is still
// sending (a rate limit, a message too large, a policy close, a drain) keeps its socket a little
// after lws is done with it. Closed at once, the kernel answers the client's next bytes with a
// reset, and a reset makes the client's TCP drop what it had not read yet: our close frame, so a
// browser saw 1006 instead of the code and reason (and reconnected where 1008 says not to;
// discard_unread.hpp only empties what had arrived before). Here the socket's write side is shut
// (a FIN after the close frame), and what still comes is read and thrown away until the client's
// FIN, an error, or a few seconds; bounded in number, past which a socket is closed as before.
#pragma once

#include <ev.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <unordered_map>

namespace wsbridge {

class LingeringCloses {
 public:
  static constexpr auto kLingerTime = std::chrono::seconds(2);
  explicit LingeringCloses(std::size_t max_sockets) : max_sockets_(max_sockets) {}
  ~LingeringCloses();  // closes what still lingers
  LingeringCloses(const LingeringCloses&) = delete;
  LingeringCloses& operator=(const LingeringCloses&) = delete;

  // Takes lws' socket `fd` from under it (a placeholder under its number, which lws closes) and
  // lingers on it; on a thread without a loop, or past the bound, leaves it to lws. On the
  // service thread, before lws closes `fd`.
  void take(int fd);
  std::size_t lingering() const { return sockets_.size(); }

 private:
  struct Socket {
    LingeringCloses* owner = nullptr;
    int fd = -1;
    ev_io readable{};
    ev_timer deadline{};
  };
  static void on_readable(struct ev_loop* loop, ev_io* watcher, int events);
  static void on_deadline(struct ev_loop* loop, ev_timer* watcher, int events);
  void finish(int fd);

  const std::size_t max_sockets_;
  struct ev_loop* loop_ = nullptr;
  std::unordered_map<int, std::unique_ptr<Socket>> sockets_;  // by our descriptor
};

}  // namespace wsbridge
