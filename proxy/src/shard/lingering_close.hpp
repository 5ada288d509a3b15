// A lingering close, as web servers do it: a connection wsbridge closes while its client is still
// sending (a rate limit, a message too large, a policy close, a drain) keeps its socket a little
// after lws is done with it. Closed at once, the kernel answers the client's next bytes with a
// reset, and a reset makes the client's TCP drop what it had not read yet: our close frame, so a
// browser saw 1006 instead of the code and reason (and reconnected where 1008 says not to;
// discard_unread.hpp only empties what had arrived before). Here the socket's write side is shut
// (a FIN after the close frame), and what still comes is read and thrown away until the client's
// FIN, an error, or a few seconds. A lingering socket keeps its connection's place under the
// connection limits until it is closed (else a client closed at once, by a rate limit say, could
// open connection after connection past max_connections_per_ip while the old ones lingered,
// each holding a descriptor); and their number is bounded by a share of the open-file limit,
// past which a socket is closed as before.
#pragma once

#include <ev.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <unordered_map>

#include "server/connection_slots.hpp"

namespace wsbridge {

class LingeringCloses {
 public:
  static constexpr auto kLingerTime = std::chrono::seconds(2);
  explicit LingeringCloses(std::size_t max_sockets) : max_sockets_(max_sockets) {}
  // At most this many at once (a share of the open-file limit: Shard::open).
  void set_max_sockets(std::size_t n) { max_sockets_ = n; }
  ~LingeringCloses();  // closes what still lingers
  LingeringCloses(const LingeringCloses&) = delete;
  LingeringCloses& operator=(const LingeringCloses&) = delete;

  // Takes lws' socket `fd` from under it (a placeholder under its number, which lws closes) and
  // lingers on it; on a thread without a loop, or past the bound, leaves it to lws. On the
  // service thread, before lws closes `fd`.
  void take(int fd, std::optional<ConnectionSlots::Slot> slot);
  std::size_t lingering() const { return sockets_.size(); }

 private:
  struct Socket {
    LingeringCloses* owner = nullptr;
    int fd = -1;
    ev_io readable{};
    ev_timer deadline{};
    std::optional<ConnectionSlots::Slot> slot;  // given back when it closes
  };
  static void on_readable(struct ev_loop* loop, ev_io* watcher, int events);
  static void on_deadline(struct ev_loop* loop, ev_timer* watcher, int events);
  void finish(int fd);

  std::size_t max_sockets_;
  struct ev_loop* loop_ = nullptr;
  std::unordered_map<int, std::unique_ptr<Socket>> sockets_;  // by our descriptor
};

}  // namespace wsbridge
