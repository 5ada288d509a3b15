// A child process of the load generator: its share of the connections on one event loop, the
// commands from the parent, ramping connections up, and the idle mode.
#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "child.hpp"

namespace bench {

Child::Child(const Options& o, unsigned index, int control_fd)
    : o_(o), index_(index), loop_(*this) {
  control_.fd = control_fd;
  control_.role = Role::kControl;
  loop_.watch(control_, EPOLLIN);
  loop_.set_source_addresses(o.source_ips);
  loop_.set_offer_deflate(o.deflate);
  loop_.set_inflate_memo(o.inflate_memo);
  loop_.set_subprotocol(o.subprotocol);
  tcp_buf_.resize(256 * 1024);
  conns_.resize(share(o.connections, o.procs, index));
  for (std::size_t i = 0; i < conns_.size(); ++i) conns_[i].index = static_cast<std::uint32_t>(i);
  if (o.transport != "ws") {
    ups_.resize(conns_.size());
    for (std::size_t i = 0; i < ups_.size(); ++i) ups_[i].index = static_cast<std::uint32_t>(i);
  }
  padding_.assign(std::max(o.payload, 1u), 'x');
}

int Child::run() {
  if (o_.mode == "fanout") return run_fanout();
  if (o_.mode == "rpc") return run_rpc();
  if (o_.mode == "handshake") return run_handshake();
  if (o_.mode == "publish") return run_publish();
  if (o_.mode == "echo") return run_echo();
  if (o_.mode == "http") return run_http_load();
  return run_idle();
}

void Child::on_open(Conn& c) {
  if (c.tag == kPublisher) {
    publisher_ready_ = true;
    return;
  }
  if (o_.mode == "echo" || o_.echo) {
    echo_send(c, now_ns());  // the probe: ready once it came back
    loop_.flush(c);
    return;
  }
  if (o_.mode == "rpc") {
    mark_ready(c);
    return;
  }
  if (o_.mode == "handshake") {
    handshake_done(c);
    return;
  }
  if (o_.mqtt) {
    mqtt_open(c);
    return;
  }
  const std::string topic =
      o_.topics > 1 ? o_.topic + "/" + std::to_string(global_index(c) % o_.topics) : o_.topic;
  loop_.send_text(c, R"({"type":"subscribe","topic":")" + topic + R"(","id":1})");
}

void Child::on_text(Conn& c, const char* data, std::size_t len, std::uint64_t t) {
  if (o_.mode == "echo" || o_.echo) {
    echo_message(c, data, len, t);
    return;
  }
  const std::string_view text(data, len);
  if (text.starts_with(R"({"type":"message")")) {
    on_message(c, text, t);
    return;
  }
  // The top-level "type": first when the server writes it first (as wsbridge's message frames
  // and the Node bridge do), else the last one (nlohmann sorts keys, so "type" comes after
  // "body", "code", "headers", "id"... which may hold nested objects of their own).
  const bool type_first = text.starts_with(R"({"type":")");
  const std::size_t at = type_first ? 1 : text.rfind(R"("type":")");
  if (at == std::string_view::npos) return;
  const std::string_view type = text.substr(at + 8, text.find('"', at + 8) - (at + 8));
  if (type == "message") {
    on_message(c, text, t);
  } else if (type == "response") {
    on_response(c, text, t, type_first);
  } else if (type == "ack") {
    if (!c.ready) mark_ready(c);
  } else if (type == "error") {
    ++loop_.errors.error_frames;
    if (o_.mode == "rpc") {
      std::int64_t id = 0;
      if (find_key_int(text, R"("id":)", id, type_first)) {
        finish_request(c, static_cast<std::uint64_t>(id), 0, t, false);
      }
    } else if (!c.ready && c.tag != kPublisher && http_mode()) {
      http_fail(c);
    } else if (!c.ready && c.tag != kPublisher) {
      if (ramping_) in_progress_--;
      c.tag = kFailed;
      loop_.close(c, true);
    }
  }
  // status, pong: nothing to do
}

bool Child::find_key_int(std::string_view text, std::string_view key, std::int64_t& out,
                         bool first) {
  const std::size_t pos = first ? text.find(key) : text.rfind(key);
  return pos != std::string_view::npos && find_int(text, key, out, pos);
}

void Child::on_closed(Conn& c, bool) {
  if (o_.mode == "handshake") {
    restart_.push_back(c.index);  // not from inside the loop's dispatch of this fd
    return;
  }
  if (c.tag == kPublisher) {
    publisher_ready_ = false;
    return;
  }
  if (c.tag == kFailed) return;
  if (!c.ready && ramping_) in_progress_--;
  if (c.ready) --ready_count_;
  c.ready = false;
  c.tag = kFailed;
}

void Child::on_fd(Conn& c, std::uint32_t events) {
  if (c.role == Role::kHttpConn) {
    http_load_event(c, events);
    return;
  }
  if (c.role == Role::kHttpDown || c.role == Role::kHttpUp) {
    http_event(c, events);
    return;
  }
  if (c.role == Role::kControl) {
    char buf[4096];
    const ssize_t n = ::read(c.fd, buf, sizeof buf);
    if (n <= 0) {
      // The parent is gone: leave at once.
      std::_Exit(3);
    }
    c.in.append(buf, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = c.in.find('\n')) != std::string::npos) {
      commands_.push_back(c.in.substr(0, nl));
      c.in.erase(0, nl + 1);
    }
    return;
  }
  if (c.role == Role::kMqtt) {
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
      const ssize_t n = ::recv(c.fd, tcp_buf_.data(), tcp_buf_.size(), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        ++loop_.errors.closed;
        ::close(c.fd);
        c.fd = -1;
        return;
      }
      // The publish mode's counting subscriber; the fan-out's publisher gets nothing (QoS 0).
      if (n > 0) mqtt_feed(c, tcp_buf_.data(), static_cast<std::size_t>(n), now_ns());
    }
    if (events & EPOLLOUT) flush_mqtt();
  }
}

unsigned Child::global_index(const Conn& c) const {
  // Interleaved across processes, so --topics spreads evenly whatever --procs is.
  return c.index * o_.procs + index_;
}

void Child::mark_ready(Conn& c) {
  c.ready = true;
  ++ready_count_;
  if (ramping_) in_progress_--;
}

bool Child::ramp(std::size_t target) {
  ramping_ = true;
  const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(o_.connect_timeout * kSec);
  while (true) {
    while (next_start_ < target && in_progress_ < o_.concurrency) {
      Conn& c = conns_[next_start_++];
      c.tag = kSubscriber;
      const bool started = o_.mode == "http" ? http_load_start(c)
                           : http_mode()     ? http_open(c)
                                             : loop_.connect_ws(c, o_.url);
      if (started) {
        ++in_progress_;
      } else {
        c.tag = kFailed;
      }
    }
    if (next_start_ >= target && in_progress_ == 0) break;
    if (now_ns() > deadline) {
      for (std::size_t i = 0; i < next_start_; ++i) {
        Conn& c = conns_[i];
        if (c.fd >= 0 && !c.ready && c.tag == kSubscriber) {
          ++loop_.errors.timeout;
          c.tag = kFailed;
          loop_.close(c, false);
        }
      }
      ramping_ = false;
      in_progress_ = 0;
      return false;
    }
    pump(20);
  }
  ramping_ = false;
  return true;
}

std::string Child::wait_command() {
  while (commands_.empty()) pump(100);
  std::string cmd = commands_.front();
  commands_.erase(commands_.begin());
  return cmd;
}

std::size_t Child::open_count() const {
  std::size_t n = 0;
  for (const auto& c : conns_) {
    n += (c.fd >= 0 || c.role == Role::kHttpDown) && c.state == State::kOpen ? 1 : 0;
  }
  return n;
}

Kv Child::base_kv() {
  Kv kv;
  kv["open"] = std::to_string(open_count());
  kv["ready"] = std::to_string(ready_count_);
  add_errors(kv, loop_.errors);
  kv["tls_handshakes"] = std::to_string(loop_.tls_handshakes);
  kv["tls_resumed"] = std::to_string(loop_.tls_resumed);
  // Words, not counts: the parent keeps the first process's (s_ keys are not summed).
  if (!loop_.tls_version.empty()) kv["s_tls"] = loop_.tls_version + "/" + loop_.tls_cipher;
  kv["deflate_conns"] = std::to_string(loop_.deflate_conns);
  kv["deflate_no_context"] = std::to_string(loop_.deflate_no_context);
  kv["compressed_in"] = std::to_string(loop_.compressed_in);
  kv["compressed_wire_bytes"] = std::to_string(loop_.compressed_wire_bytes);
  kv["compressed_plain_bytes"] = std::to_string(loop_.compressed_plain_bytes);
  kv["memo_hits"] = std::to_string(loop_.memo_hits);
  kv["messages_in"] = std::to_string(loop_.messages_in);
  kv["http_requests"] = std::to_string(http_requests_);
  kv["http_posts"] = std::to_string(http_posts_);
  kv["http_reconnects"] = std::to_string(http_reconnects_);
  kv["http_lost"] = std::to_string(http_lost_);
  kv["cpu_us"] = std::to_string(cpu_us());
  return kv;
}

void Child::finish() {
  // Wait for END, then close everything (the close handshake is not timed).
  (void)wait_command();
  loop_.shutting_down = true;
  if (http_mode()) http_end_sessions();
  for (auto& c : conns_) {
    if (http_mode()) {
      http_close(c);
    } else {
      loop_.close(c, true);
    }
  }
  for (auto& c : ups_) http_close(c);
  if (publisher_.fd >= 0) loop_.close(publisher_, true);
  if (mqtt_.fd >= 0) ::close(mqtt_.fd);
}

int Child::run_idle() {
  if (o_.messages > 0 && !connect_mqtt()) {
    die("idle: cannot connect to the MQTT broker " + o_.mqtt_url.host_port());
  }
  for (std::size_t s = 0; s < o_.steps.size(); ++s) {
    ramp(std::min<std::size_t>(share(o_.steps[s], o_.procs, index_), conns_.size()));
    if (o_.messages > 0) deliver_messages();
    report("READY", base_kv());
    (void)wait_command();  // GO
  }
  report("RESULT", base_kv());
  finish();
  return 0;
}

// What a server sets up on a connection's first messages (a compression context, buffers) is
// then in the memory read after the step. Messages published by other processes count too: any
// message does. Published again every 2 s for connections still waiting (a subscription the
// server acknowledged before the broker did), given up after 10 s (counted as timeouts).
void Child::deliver_messages() {
  for (auto& c : conns_) c.mark = c.received;
  const std::uint64_t deadline = now_ns() + 10 * kSec;
  std::uint64_t next_publish = 0;
  while (true) {
    const std::uint64_t now = now_ns();
    std::size_t waiting = 0;
    for (const auto& c : conns_) {
      if (c.ready && c.fd >= 0 && c.received < c.mark + o_.messages) ++waiting;
    }
    if (waiting == 0) return;
    if (now > deadline) {
      loop_.errors.timeout += waiting;
      return;
    }
    if (now >= next_publish) {
      for (unsigned k = 0; k < o_.messages; ++k) publish_one();
      flush_mqtt();
      next_publish = now + 2 * kSec;
    }
    pump(10);
  }
}

}  // namespace bench
