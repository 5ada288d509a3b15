#include "reverse_proxy/direct_tunnel.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "server/event_loop.hpp"
#include "support/discard_unread.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge::reverse_proxy {

namespace {

// One read per readiness event, as large as a relay needs: bigger messages take more events,
// each as cheap. Shared by every tunnel of the thread (a read goes out before the next one).
constexpr std::size_t kReadBytes = 64 * 1024;
thread_local std::array<char, kReadBytes> t_buffer;

// After one side ended: how long the other may take to accept what that side sent last.
constexpr ev_tstamp kFlushSeconds = 10.0;

bool would_block(int error) {
  return error == EAGAIN || error == EWOULDBLOCK || error == EINTR;
}

}  // namespace

DirectTunnel::DirectTunnel(int client_fd, int backend_fd, std::chrono::milliseconds idle_timeout,
                           std::optional<std::chrono::milliseconds> lifetime, Owner& owner)
    : client_fd_(client_fd),
      backend_fd_(backend_fd),
      idle_timeout_(idle_timeout),
      lifetime_(lifetime),
      owner_(owner) {
  up_.tunnel = this;
  up_.from = client_fd;
  up_.to = backend_fd;
  up_.from_name = "client";
  down_.tunnel = this;
  down_.from = backend_fd;
  down_.to = client_fd;
  down_.from_name = "backend";
}

DirectTunnel::~DirectTunnel() {
  if (finished_) return;
  finished_ = true;
  if (loop_ != nullptr) {
    for (Direction* d : {&up_, &down_}) {
      ev_io_stop(loop_, &d->readable);
      ev_io_stop(loop_, &d->writable);
    }
    ev_timer_stop(loop_, &timer_);
  }
  close_sockets();
}

bool DirectTunnel::start() {
  loop_ = this_thread_ev_loop();
  if (loop_ == nullptr) return false;
  for (Direction* d : {&up_, &down_}) {
    ev_io_init(&d->readable, &DirectTunnel::on_readable, d->from, EV_READ);
    d->readable.data = d;
    ev_io_init(&d->writable, &DirectTunnel::on_writable, d->to, EV_WRITE);
    d->writable.data = d;
    ev_io_start(loop_, &d->readable);
  }
  ev_init(&timer_, &DirectTunnel::on_timer);
  timer_.data = this;
  last_activity_ = ev_now(loop_);
  if (lifetime_) ends_at_ = last_activity_ + static_cast<ev_tstamp>(lifetime_->count()) / 1000.0;
  arm_timer(last_activity_);
  return true;
}

void DirectTunnel::arm_timer(ev_tstamp now) {
  ev_tstamp at = 0;
  if (idle_timeout_.count() > 0) {
    at = last_activity_ + static_cast<ev_tstamp>(idle_timeout_.count()) / 1000.0;
  }
  if (lifetime_ && (at == 0 || ends_at_ < at)) at = ends_at_;
  if (at == 0) return;
  ev_timer_set(&timer_, std::max(at - now, 0.001), 0.0);
  ev_timer_start(loop_, &timer_);
}

void DirectTunnel::on_readable(struct ev_loop* /*loop*/, ev_io* watcher, int /*events*/) {
  auto* d = static_cast<Direction*>(watcher->data);
  d->tunnel->relay(*d);
}

void DirectTunnel::on_writable(struct ev_loop* /*loop*/, ev_io* watcher, int /*events*/) {
  auto* d = static_cast<Direction*>(watcher->data);
  d->tunnel->flush(*d);
}

void DirectTunnel::relay(Direction& d) {
  // (recvfrom: the interposed recv() of recv_hook/ follows lws' sockets, and these are not.)
  const ssize_t n =
      ::recvfrom(d.from, t_buffer.data(), t_buffer.size(), MSG_DONTWAIT, nullptr, nullptr);
  if (n == 0) return half_ended(d);
  if (n < 0) {
    if (would_block(errno)) return;
    return end(d.from_name, text::errno_text(errno));
  }
  last_activity_ = ev_now(loop_);
  d.moved += static_cast<std::uint64_t>(n);
  const std::size_t got = static_cast<std::size_t>(n);
  ssize_t sent = ::send(d.to, t_buffer.data(), got, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (sent < 0) {
    if (!would_block(errno)) {
      return end(&d == &up_ ? "backend" : "client", text::errno_text(errno));
    }
    sent = 0;
  }
  if (static_cast<std::size_t>(sent) == got) return;
  // The other side is slow: keep the rest, read this side again once it went out.
  d.pending.assign(t_buffer.data() + sent, got - static_cast<std::size_t>(sent));
  d.pending_offset = 0;
  ev_io_stop(loop_, &d.readable);
  ev_io_start(loop_, &d.writable);
}

void DirectTunnel::flush(Direction& d) {
  const std::size_t left = d.pending.size() - d.pending_offset;
  const ssize_t sent =
      ::send(d.to, d.pending.data() + d.pending_offset, left, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (sent < 0) {
    if (would_block(errno)) return;
    return end(&d == &up_ ? "backend" : "client", text::errno_text(errno));
  }
  last_activity_ = ev_now(loop_);
  d.pending_offset += static_cast<std::size_t>(sent);
  if (d.pending_offset < d.pending.size()) return;
  std::string().swap(d.pending);  // (an idle tunnel keeps no buffer)
  d.pending_offset = 0;
  ev_io_stop(loop_, &d.writable);
  if (d.ended) return end(d.from_name, "connection closed");
  ev_io_start(loop_, &d.readable);
}

void DirectTunnel::half_ended(Direction& d) {
  d.ended = true;
  ev_io_stop(loop_, &d.readable);
  if (d.pending.empty()) return end(d.from_name, "connection closed");
  // What it sent last goes out first; nothing more is read either way.
  Direction& other = &d == &up_ ? down_ : up_;
  ev_io_stop(loop_, &other.readable);
  ev_io_stop(loop_, &other.writable);
  flush_deadline_ = ev_now(loop_) + kFlushSeconds;
  ev_timer_stop(loop_, &timer_);
  ev_timer_set(&timer_, kFlushSeconds, 0.0);
  ev_timer_start(loop_, &timer_);
}

void DirectTunnel::on_timer(struct ev_loop* loop, ev_timer* watcher, int /*events*/) {
  auto* t = static_cast<DirectTunnel*>(watcher->data);
  const ev_tstamp now = ev_now(loop);
  if (t->flush_deadline_ > 0) {
    if (now >= t->flush_deadline_) {
      return t->end("wsbridge", "the last bytes were not taken in time");
    }
    ev_timer_set(watcher, t->flush_deadline_ - now, 0.0);
    ev_timer_start(loop, watcher);
    return;
  }
  if (t->lifetime_ && now >= t->ends_at_) return t->end("wsbridge", "token expired");
  const ev_tstamp idle = static_cast<ev_tstamp>(t->idle_timeout_.count()) / 1000.0;
  if (idle > 0 && now - t->last_activity_ >= idle) {
    return t->end("wsbridge", "websocket_idle_timeout");
  }
  t->arm_timer(now);
}

void DirectTunnel::end(std::string_view by, std::string_view why) {
  if (finished_) return;
  finished_ = true;
  for (Direction* d : {&up_, &down_}) {
    ev_io_stop(loop_, &d->readable);
    ev_io_stop(loop_, &d->writable);
  }
  ev_timer_stop(loop_, &timer_);
  close_sockets();
  owner_.direct_tunnel_ended(by, why);  // (last: it may destroy this tunnel)
}

void DirectTunnel::close_sockets() {
  for (int* fd : {&client_fd_, &backend_fd_}) {
    if (*fd < 0) continue;
    discard_unread(*fd);
    ::close(*fd);
    *fd = -1;
  }
}

}  // namespace wsbridge::reverse_proxy
