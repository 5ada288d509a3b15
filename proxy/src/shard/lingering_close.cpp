// Lingering closes (lingering_close.hpp).
#include "shard/lingering_close.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include "handshake/upgrade_hold.hpp"
#include "server/event_loop.hpp"

namespace wsbridge {

LingeringCloses::~LingeringCloses() {
  for (auto& [fd, socket] : sockets_) {
    ev_io_stop(loop_, &socket->readable);
    ev_timer_stop(loop_, &socket->deadline);
    ::close(fd);
  }
}

void LingeringCloses::take(int fd, std::optional<ConnectionSlots::Slot> slot) {
  if (fd < 0 || sockets_.size() >= max_sockets_) return;
  struct ev_loop* loop = this_thread_ev_loop();
  if (loop == nullptr) return;
  const auto kept = upgrade_hold::detach_socket(fd);
  if (!kept) return;  // (out of descriptors: lws closes it as before)
  loop_ = loop;
  ::shutdown(*kept, SHUT_WR);  // (lws may have: a second one is harmless)
  auto socket = std::make_unique<Socket>();
  socket->owner = this;
  socket->fd = *kept;
  ev_io_init(&socket->readable, &LingeringCloses::on_readable, *kept, EV_READ);
  socket->readable.data = socket.get();
  ev_timer_init(&socket->deadline, &LingeringCloses::on_deadline,
                std::chrono::duration<double>(kLingerTime).count(), 0.0);
  socket->deadline.data = socket.get();
  socket->slot = std::move(slot);
  ev_io_start(loop_, &socket->readable);
  ev_timer_start(loop_, &socket->deadline);
  sockets_.emplace(*kept, std::move(socket));
}

void LingeringCloses::on_readable(struct ev_loop* /*loop*/, ev_io* watcher, int /*events*/) {
  auto* socket = static_cast<Socket*>(watcher->data);
  char sink[16 * 1024];
  for (int i = 0; i < 16; ++i) {
    const ssize_t n = ::recv(socket->fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    return socket->owner->finish(socket->fd);  // its FIN (0), or an error: nothing to protect
  }
}

void LingeringCloses::on_deadline(struct ev_loop* /*loop*/, ev_timer* watcher, int /*events*/) {
  auto* socket = static_cast<Socket*>(watcher->data);
  socket->owner->finish(socket->fd);
}

void LingeringCloses::finish(int fd) {
  const auto it = sockets_.find(fd);
  if (it == sockets_.end()) return;
  ev_io_stop(loop_, &it->second->readable);
  ev_timer_stop(loop_, &it->second->deadline);
  ::close(fd);
  sockets_.erase(it);
}

}  // namespace wsbridge
