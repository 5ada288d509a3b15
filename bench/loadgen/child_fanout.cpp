// The fanout mode's child side: subscribers, the publisher (a WebSocket or raw MQTT 3.1.1 QoS 0),
// and the delivery counts and latencies.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "child.hpp"

namespace bench {

bool Child::connect_mqtt(bool subscribe) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(o_.mqtt_url.port);
  inet_pton(AF_INET, o_.mqtt_url.host.c_str(), &dst.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
    ::close(fd);
    return false;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // CONNECT: MQTT 3.1.1, clean session, keepalive 0 (no PINGREQ needed).
  write_all(fd, connect_packet("wsbridge-bench-pub-" + std::to_string(getpid()), 0));
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  // CONNACK (4 bytes), then for a subscriber the SUBACK (5 bytes) of one QoS 0 filter.
  auto read_exact = [&](unsigned char* out, std::size_t len) {
    std::size_t got = 0;
    while (got < len) {
      const ssize_t n = ::recv(fd, out + got, len - got, 0);
      if (n <= 0) return false;
      got += static_cast<std::size_t>(n);
    }
    return true;
  };
  unsigned char connack[4];
  if (!read_exact(connack, 4) || connack[0] != 0x20 || connack[3] != 0) {
    ::close(fd);
    return false;
  }
  if (subscribe) {
    std::string body("\x00\x01", 2);
    body += static_cast<char>(o_.topic.size() >> 8);
    body += static_cast<char>(o_.topic.size() & 0xFF);
    body += o_.topic;
    body += '\x00';
    std::string packet = "\x82";
    packet += static_cast<char>(body.size());
    write_all(fd, packet + body);
    unsigned char suback[5];
    if (!read_exact(suback, 5) || suback[0] != 0x90 || suback[4] == 0x80) {
      ::close(fd);
      return false;
    }
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  mqtt_.fd = fd;
  mqtt_.role = Role::kMqtt;
  loop_.watch(mqtt_, EPOLLIN);
  return true;
}

void Child::flush_mqtt() {
  while (mqtt_.out_off < mqtt_.out.size()) {
    const ssize_t n = ::send(mqtt_.fd, mqtt_.out.data() + mqtt_.out_off,
                             mqtt_.out.size() - mqtt_.out_off, MSG_NOSIGNAL);
    if (n > 0) {
      mqtt_.out_off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!mqtt_.epollout) loop_.set_events(mqtt_, EPOLLIN | EPOLLOUT);
      return;
    }
    ++loop_.errors.closed;
    return;
  }
  mqtt_.out.clear();
  mqtt_.out_off = 0;
  if (mqtt_.epollout) loop_.set_events(mqtt_, EPOLLIN);
}

void Child::publish_one() {
  const std::uint64_t t = now_ns();
  const std::string payload = make_payload(published_, t);
  ++published_;
  if (mqtt_.fd >= 0) {
    mqtt_.out += publish_packet(payload, 0, 0);
  } else {
    loop_.queue_text(publisher_, R"({"type":"publish","topic":")" + o_.topic + R"(","payload":)" +
                                     payload + "}");
  }
}

std::size_t Child::publisher_backlog() const {
  return mqtt_.fd >= 0 ? mqtt_.out.size() - mqtt_.out_off
                       : publisher_.out.size() - publisher_.out_off;
}

void Child::flush_publisher() {
  if (mqtt_.fd >= 0) {
    flush_mqtt();
  } else if (publisher_.fd >= 0) {
    loop_.flush(publisher_);
  }
}

void Child::on_message(Conn& c, std::string_view text, std::uint64_t t) {
  std::int64_t seq = 0;
  std::int64_t ts = 0;
  const std::size_t at = text.find(R"("payload")");
  if (at == std::string_view::npos || !find_int(text, R"("s":)", seq, at) ||
      !find_int(text, R"("t":)", ts, at)) {
    ++foreign_messages_;
    return;
  }
  count_delivery(
      c, seq, ts,
      payload_ok(text, at, static_cast<std::uint64_t>(seq), static_cast<std::uint64_t>(ts)), t);
}

void Child::count_delivery(Conn& c, std::int64_t seq, std::int64_t ts, bool ok, std::uint64_t t) {
  ++c.received;
  if (!ok) ++loop_.errors.corrupt;
  if (o_.mode == "publish") {
    // One subscriber, many publishers: messages of different connections may overtake each
    // other, so duplicates are found by sequence number, not by order.
    const auto s = static_cast<std::size_t>(seq);
    if (seq < 0 || s >= published_) {
      ++foreign_messages_;
      return;
    }
    if (seen_.size() <= s) seen_.resize(std::max<std::size_t>(s + 1, seen_.size() * 2));
    if (seen_[s]) {
      ++c.dups;
      return;
    }
    seen_[s] = true;
    ++c.unique;
    ++delivered_;
    last_delivery_ = t;
  } else if (seq > c.max_seq) {
    c.max_seq = seq;
    ++c.unique;
    ++delivered_;
    last_delivery_ = t;
  } else {
    ++c.dups;
    return;
  }
  const auto sent = static_cast<std::uint64_t>(ts);
  if (sent >= window_start_ && sent <= pub_end_) hist_.record(t > sent ? t - sent : 0);
  if (t >= window_start_ && t <= pub_end_) ++in_window_;
}

int Child::run_fanout() {
  const bool publishes = index_ == 0;
  if (publishes) {
    if (o_.publisher == "ws") {
      publisher_.tag = kPublisher;
      if (!loop_.connect_ws(publisher_, o_.url)) die("publisher: cannot connect");
      const std::uint64_t deadline = now_ns() + 10 * kSec;
      while (!publisher_ready_ && now_ns() < deadline && publisher_.fd >= 0) pump(20);
      if (!publisher_ready_) die("publisher: WebSocket upgrade failed");
    } else if (!connect_mqtt()) {
      die("publisher: cannot connect to the MQTT broker " + o_.mqtt_url.host_port());
    }
  }
  ramp(conns_.size());
  report("READY", base_kv());
  const std::string go = wait_command();  // GO <t0>
  t0_ = std::strtoull(go.c_str() + 3, nullptr, 10);
  window_start_ = t0_ + static_cast<std::uint64_t>(o_.warmup * kSec);
  pub_end_ = t0_ + static_cast<std::uint64_t>(o_.duration * kSec);
  const std::uint64_t cpu_start = cpu_us();
  const std::size_t local_subs = ready_count_;
  std::int64_t credit = 0;
  std::uint64_t progress_at = 0;
  std::uint64_t delivered_then = 0;
  std::uint64_t stalls = 0;
  while (true) {
    std::uint64_t now = now_ns();
    if (now >= pub_end_) break;
    int timeout = 1;
    if (publishes && now >= t0_) {
      if (o_.rate > 0) {
        const auto due =
            static_cast<std::uint64_t>(static_cast<double>(now - t0_) * o_.rate / 1e9) + 1;
        while (published_ < due && publisher_backlog() < (8u << 20)) publish_one();
        const double next_at =
            static_cast<double>(t0_) + static_cast<double>(published_) * 1e9 / o_.rate;
        now = now_ns();
        timeout = next_at > static_cast<double>(now)
                      ? static_cast<int>(std::min(10.0, (next_at - static_cast<double>(now)) / 1e6))
                      : 0;
      } else {
        // Closed loop: at most --window messages per local subscriber not yet delivered.
        const auto subs = static_cast<std::int64_t>(std::max<std::size_t>(local_subs, 1));
        auto outstanding = [&] {
          return static_cast<std::int64_t>(published_) * subs -
                 static_cast<std::int64_t>(delivered_) - credit;
        };
        int batch = 0;
        while (outstanding() < static_cast<std::int64_t>(o_.window) * subs && batch < 64) {
          publish_one();
          ++batch;
        }
        if (delivered_ != delivered_then) {
          delivered_then = delivered_;
          progress_at = now;
        } else if (progress_at == 0) {
          progress_at = now;
        } else if (now - progress_at > 200 * kMs && outstanding() > 0) {
          credit += outstanding();  // lost messages must not stall the loop forever
          ++stalls;
          progress_at = now;
        }
        timeout = batch > 0 ? 0 : 1;
      }
      flush_publisher();
    } else if (now < t0_) {
      timeout = static_cast<int>(std::min<std::uint64_t>((t0_ - now) / kMs, 10));
    }
    pump(timeout);
  }
  const std::uint64_t pub_stop = now_ns();
  // Drain: until every local subscriber has the last message (the publisher's process knows
  // it), or nothing arrived for --drain-quiet, or --drain-max.
  const std::uint64_t drain_deadline = pub_stop + static_cast<std::uint64_t>(o_.drain_max * kSec);
  const auto quiet = static_cast<std::uint64_t>(o_.drain_quiet * kSec);
  while (true) {
    flush_publisher();
    pump(5);
    const std::uint64_t now = now_ns();
    if (now > drain_deadline) break;
    if (publishes && delivered_ >= published_ * local_subs) break;
    if (now - std::max(last_delivery_, pub_stop) > quiet) break;
  }
  Kv kv = base_kv();
  kv["published"] = std::to_string(published_);
  kv["pub_start_ns"] = std::to_string(publishes ? t0_ : 0);
  kv["pub_stop_ns"] = std::to_string(publishes ? pub_stop : 0);
  std::uint64_t unique = 0, dups = 0;
  for (const auto& c : conns_) {
    unique += c.unique;
    dups += c.dups;
  }
  kv["unique"] = std::to_string(unique);
  kv["dups"] = std::to_string(dups);
  kv["in_window"] = std::to_string(in_window_);
  kv["stalls"] = std::to_string(stalls);
  kv["foreign"] = std::to_string(foreign_messages_);
  kv["run_cpu_us"] = std::to_string(cpu_us() - cpu_start);
  kv["subscribed_at_start"] = std::to_string(local_subs);
  kv["hist"] = hist_.serialize();
  report("RESULT", kv);
  finish();
  return 0;
}

}  // namespace bench
