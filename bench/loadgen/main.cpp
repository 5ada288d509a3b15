// wsbridge-loadgen: an epoll load generator for WebSocket bridges that speak wsbridge's JSON
// protocol (docs/PROTOCOL.md). Modes:
//
//   fanout  N subscribers on one topic; a publisher (raw MQTT 3.1.1 QoS 0 to the broker, or a
//           WebSocket "publish" frame) sends payloads carrying a sequence number and a
//           CLOCK_MONOTONIC timestamp, at a fixed rate or as fast as the subscribers keep up
//           (closed loop: at most --window messages per subscriber outstanding). Reports delivered
//           messages/s, one-way latency percentiles, missing and duplicated messages.
//   idle    N connections opened (in --steps) and subscribed, then held: the server's memory is
//           read by the caller at each "ready" event.
//   rpc     N connections sending {"type":"request"} frames (closed loop, --depth in flight each)
//           and timing the {"type":"response"} answers.
//   httpd   a tiny keep-alive HTTP/1.1 backend for the rpc mode (the same for every bridge).
//
// The work is split over --procs child processes (each has its own open-file limit); the parent
// coordinates them over socketpairs and prints one JSON object per line on stdout: "ready"
// events (with --wait-stdin it then waits for a line on stdin before going on, so that a driver
// can read the server's CPU and memory at that point) and one final "result".
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "histogram.hpp"
#include "ws_client.hpp"

namespace bench {
namespace {

constexpr std::uint64_t kMs = 1000000ull;
constexpr std::uint64_t kSec = 1000000000ull;

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "wsbridge-loadgen: %s\n", message.c_str());
  std::exit(2);
}

struct Options {
  std::string mode;
  Url url;
  std::string publisher = "ws";  // "ws" or mqtt://host:port
  Url mqtt_url;
  unsigned connections = 100;  // subscribers / idle connections / rpc connections
  std::string topic = "bench/fanout";
  unsigned topics = 1;
  double rate = 0;  // messages/s published; 0: closed loop, as fast as delivered
  unsigned window = 32;
  double duration = 5;
  double warmup = 1;
  double settle = 0.3;
  unsigned payload = 100;
  unsigned procs = 1;
  unsigned concurrency = 200;
  unsigned source_ips = 0;
  std::vector<unsigned> steps;
  bool wait_stdin = false;
  double hold = 0;
  unsigned depth = 1;
  std::string path = "/x";
  std::string method = "GET";
  double drain_quiet = 0.5;
  double drain_max = 10;
  double connect_timeout = 60;
  unsigned http_port = 0;
  unsigned http_body = 64;
};

void usage() {
  std::fputs(
      "usage: wsbridge-loadgen MODE [options]\n"
      "  fanout --url ws://127.0.0.1:8080/mqtt --subscribers N [--topic T]\n"
      "         [--publisher ws|mqtt://127.0.0.1:1883] [--rate MSGS_PER_S | 0 (closed loop)]\n"
      "         [--window W] [--duration S] [--warmup S] [--payload BYTES]\n"
      "  idle   --url URL --connections N [--steps N1,N2,...] [--topic T] [--topics K]\n"
      "         [--hold S]\n"
      "  rpc    --url ws://127.0.0.1:8080/rpc --connections N [--depth D] [--duration S]\n"
      "         [--warmup S] [--path /x] [--method GET]\n"
      "  httpd  [--port P] [--body-bytes N]\n"
      "common: --procs P (child processes, each with its own fd limit), --concurrency C (upgrades\n"
      "  in flight), --source-ips K (bind to 127.0.0.1..K), --wait-stdin (wait for a line after\n"
      "  each ready event and after the result), --connect-timeout S\n",
      stderr);
}

Options parse_options(int argc, char** argv) {
  if (argc < 2) {
    usage();
    std::exit(2);
  }
  Options o;
  o.mode = argv[1];
  if (o.mode != "fanout" && o.mode != "idle" && o.mode != "rpc" && o.mode != "httpd") {
    usage();
    std::exit(2);
  }
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value for " + a);
      return argv[++i];
    };
    auto num = [&]() { return std::strtod(next().c_str(), nullptr); };
    auto unum = [&]() { return static_cast<unsigned>(std::strtoul(next().c_str(), nullptr, 10)); };
    if (a == "--url") {
      if (!Url::parse(next(), "ws", o.url)) die("bad --url (ws://host:port/path)");
    } else if (a == "--publisher") {
      o.publisher = next();
      if (o.publisher != "ws" && !Url::parse(o.publisher, "mqtt", o.mqtt_url)) {
        die("bad --publisher (ws or mqtt://host:port)");
      }
    } else if (a == "--subscribers" || a == "--connections") {
      o.connections = unum();
    } else if (a == "--topic") {
      o.topic = next();
    } else if (a == "--topics") {
      o.topics = std::max(1u, unum());
    } else if (a == "--rate") {
      o.rate = num();
    } else if (a == "--window") {
      o.window = std::max(1u, unum());
    } else if (a == "--duration") {
      o.duration = num();
    } else if (a == "--warmup") {
      o.warmup = num();
    } else if (a == "--settle") {
      o.settle = num();
    } else if (a == "--payload") {
      o.payload = unum();
    } else if (a == "--procs") {
      o.procs = std::max(1u, unum());
    } else if (a == "--concurrency") {
      o.concurrency = std::max(1u, unum());
    } else if (a == "--source-ips") {
      o.source_ips = unum();
    } else if (a == "--steps") {
      const std::string s = next();
      std::size_t pos = 0;
      while (pos < s.size()) {
        const std::size_t comma = s.find(',', pos);
        o.steps.push_back(
            static_cast<unsigned>(std::strtoul(s.substr(pos, comma - pos).c_str(), nullptr, 10)));
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
    } else if (a == "--wait-stdin") {
      o.wait_stdin = true;
    } else if (a == "--hold") {
      o.hold = num();
    } else if (a == "--depth") {
      o.depth = std::max(1u, unum());
    } else if (a == "--path") {
      o.path = next();
    } else if (a == "--method") {
      o.method = next();
    } else if (a == "--drain-quiet") {
      o.drain_quiet = num();
    } else if (a == "--drain-max") {
      o.drain_max = num();
    } else if (a == "--connect-timeout") {
      o.connect_timeout = num();
    } else if (a == "--port") {
      o.http_port = unum();
    } else if (a == "--body-bytes") {
      o.http_body = unum();
    } else if (a == "-h" || a == "--help") {
      usage();
      std::exit(0);
    } else {
      die("unknown option " + a);
    }
  }
  if (o.mode != "httpd" && o.url.port == 0) die("--url is required");
  if (o.steps.empty()) o.steps.push_back(o.connections);
  if (o.mode == "idle") o.connections = *std::max_element(o.steps.begin(), o.steps.end());
  if (o.procs > o.connections && o.connections > 0) o.procs = o.connections;
  if (o.warmup >= o.duration) o.warmup = 0;
  return o;
}

void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

unsigned share(unsigned total, unsigned procs, unsigned index) {
  return total / procs + (index < total % procs ? 1 : 0);
}

std::uint64_t cpu_us() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<std::uint64_t>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000ull +
         static_cast<std::uint64_t>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

// Key=value lines between children and the parent.
using Kv = std::map<std::string, std::string>;

std::string kv_line(const char* verb, const Kv& kv) {
  std::string out = verb;
  for (const auto& [k, v] : kv) out += " " + k + "=" + v;
  out += "\n";
  return out;
}

Kv parse_kv(std::string_view line) {
  Kv kv;
  std::size_t pos = line.find(' ');
  while (pos != std::string_view::npos) {
    const std::size_t next = line.find(' ', pos + 1);
    const std::string_view item =
        line.substr(pos + 1, next == std::string_view::npos ? next : next - pos - 1);
    const std::size_t eq = item.find('=');
    if (eq != std::string_view::npos)
      kv[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
    pos = next;
  }
  return kv;
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

void add_errors(Kv& kv, const Errors& e) {
  kv["err_connect"] = std::to_string(e.connect);
  kv["err_handshake"] = std::to_string(e.handshake);
  kv["err_closed"] = std::to_string(e.closed);
  kv["err_error_frames"] = std::to_string(e.error_frames);
  kv["err_protocol"] = std::to_string(e.protocol);
  kv["err_timeout"] = std::to_string(e.timeout);
  for (const auto& [code, n] : e.close_codes)
    kv["close_" + std::to_string(code)] = std::to_string(n);
}

// ---------------------------------------------------------------------------------------------
// Child side: one event loop over this process's share of the connections.

class Child : public Loop::Handler {
 public:
  Child(const Options& o, unsigned index, int control_fd) : o_(o), index_(index), loop_(*this) {
    control_.fd = control_fd;
    control_.role = Role::kControl;
    loop_.watch(control_, EPOLLIN);
    loop_.set_source_addresses(o.source_ips);
    conns_.resize(share(o.connections, o.procs, index));
    for (std::size_t i = 0; i < conns_.size(); ++i) conns_[i].index = static_cast<std::uint32_t>(i);
    padding_.assign(std::max(o.payload, 1u), 'x');
  }

  int run() {
    if (o_.mode == "fanout") return run_fanout();
    if (o_.mode == "rpc") return run_rpc();
    return run_idle();
  }

  // Loop::Handler
  void on_open(Conn& c) override {
    if (c.tag == kPublisher) {
      publisher_ready_ = true;
      return;
    }
    if (o_.mode == "rpc") {
      mark_ready(c);
      return;
    }
    const std::string topic =
        o_.topics > 1 ? o_.topic + "/" + std::to_string(global_index(c) % o_.topics) : o_.topic;
    loop_.send_text(c, R"({"type":"subscribe","topic":")" + topic + R"(","id":1})");
  }

  void on_text(Conn& c, const char* data, std::size_t len, std::uint64_t t) override {
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
      } else if (!c.ready && c.tag != kPublisher) {
        if (ramping_) in_progress_--;
        c.tag = kFailed;
        loop_.close(c, true);
      }
    }
    // status, pong: nothing to do
  }

  // A top-level integer member: the first occurrence when the frame's keys are in writing order,
  // the last when they are sorted (nested objects then come before "id" and "status").
  static bool find_key_int(std::string_view text, std::string_view key, std::int64_t& out,
                           bool first) {
    const std::size_t pos = first ? text.find(key) : text.rfind(key);
    return pos != std::string_view::npos && find_int(text, key, out, pos);
  }

  void on_closed(Conn& c, bool) override {
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

  void on_fd(Conn& c, std::uint32_t events) override {
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
        char buf[4096];
        const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          ++loop_.errors.closed;
          ::close(c.fd);
          c.fd = -1;
          return;
        }
      }
      if (events & EPOLLOUT) flush_mqtt();
    }
  }

 private:
  static constexpr std::uint32_t kSubscriber = 0;
  static constexpr std::uint32_t kPublisher = 1;
  static constexpr std::uint32_t kFailed = 2;

  unsigned global_index(const Conn& c) const {
    // Interleaved across processes, so --topics spreads evenly whatever --procs is.
    return c.index * o_.procs + index_;
  }

  void mark_ready(Conn& c) {
    c.ready = true;
    ++ready_count_;
    if (ramping_) in_progress_--;
  }

  // Starts connections until `target` have been started, keeping at most --concurrency in
  // flight, and waits for them to be ready (or failed). False on timeout.
  bool ramp(std::size_t target) {
    ramping_ = true;
    const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(o_.connect_timeout * kSec);
    while (true) {
      while (next_start_ < target && in_progress_ < o_.concurrency) {
        Conn& c = conns_[next_start_++];
        c.tag = kSubscriber;
        if (loop_.connect_ws(c, o_.url)) {
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
      loop_.poll(20);
    }
    ramping_ = false;
    return true;
  }

  // Waits for the parent's next command, serving the connections meanwhile.
  std::string wait_command() {
    while (commands_.empty()) loop_.poll(100);
    std::string cmd = commands_.front();
    commands_.erase(commands_.begin());
    return cmd;
  }

  std::size_t open_count() const {
    std::size_t n = 0;
    for (const auto& c : conns_) n += c.fd >= 0 && c.state == State::kOpen ? 1 : 0;
    return n;
  }

  Kv base_kv() {
    Kv kv;
    kv["open"] = std::to_string(open_count());
    kv["ready"] = std::to_string(ready_count_);
    add_errors(kv, loop_.errors);
    kv["cpu_us"] = std::to_string(cpu_us());
    return kv;
  }

  void report(const char* verb, const Kv& kv) { write_all(control_.fd, kv_line(verb, kv)); }

  void finish() {
    // Wait for END, then close everything (the close handshake is not timed).
    (void)wait_command();
    loop_.shutting_down = true;
    for (auto& c : conns_) loop_.close(c, true);
    if (publisher_.fd >= 0) loop_.close(publisher_, true);
    if (mqtt_.fd >= 0) ::close(mqtt_.fd);
  }

  // ---- idle -----------------------------------------------------------------------------------
  int run_idle() {
    for (std::size_t s = 0; s < o_.steps.size(); ++s) {
      ramp(std::min<std::size_t>(share(o_.steps[s], o_.procs, index_), conns_.size()));
      report("READY", base_kv());
      (void)wait_command();  // GO
    }
    report("RESULT", base_kv());
    finish();
    return 0;
  }

  // ---- fanout ---------------------------------------------------------------------------------
  bool connect_mqtt() {
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
    const std::string client_id = "wsbridge-bench-pub-" + std::to_string(getpid());
    std::string var;
    var += std::string("\x00\x04MQTT\x04\x02\x00\x00", 10);
    var += static_cast<char>(client_id.size() >> 8);
    var += static_cast<char>(client_id.size() & 0xFF);
    var += client_id;
    std::string packet = "\x10";
    packet += static_cast<char>(var.size());
    packet += var;
    write_all(fd, packet);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    unsigned char connack[4];
    std::size_t got = 0;
    while (got < 4) {
      const ssize_t n = ::recv(fd, connack + got, 4 - got, 0);
      if (n <= 0) {
        ::close(fd);
        return false;
      }
      got += static_cast<std::size_t>(n);
    }
    if (connack[0] != 0x20 || connack[3] != 0) {
      ::close(fd);
      return false;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    mqtt_.fd = fd;
    mqtt_.role = Role::kMqtt;
    loop_.watch(mqtt_, EPOLLIN);
    return true;
  }

  void flush_mqtt() {
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

  std::string make_payload(std::uint64_t seq, std::uint64_t t) {
    char head[64];
    const int n =
        std::snprintf(head, sizeof head, R"({"s":%llu,"t":%llu,"p":")",
                      static_cast<unsigned long long>(seq), static_cast<unsigned long long>(t));
    // Padded to exactly --payload bytes (when it is larger than the head).
    const auto used = static_cast<std::size_t>(n) + 2;
    const std::size_t pad = o_.payload > used ? o_.payload - used : 1;
    std::string p;
    p.reserve(used + pad);
    p.append(head, static_cast<std::size_t>(n));
    p.append(padding_, 0, std::min(pad, padding_.size()));
    p += "\"}";
    return p;
  }

  void publish_one() {
    const std::uint64_t t = now_ns();
    const std::string payload = make_payload(published_, t);
    ++published_;
    if (mqtt_.fd >= 0) {
      // PUBLISH QoS 0: fixed header, remaining length, topic, payload.
      std::size_t remaining = 2 + o_.topic.size() + payload.size();
      std::string& out = mqtt_.out;
      out += '\x30';
      do {
        auto byte = static_cast<unsigned char>(remaining % 128);
        remaining /= 128;
        if (remaining > 0) byte |= 0x80;
        out += static_cast<char>(byte);
      } while (remaining > 0);
      out += static_cast<char>(o_.topic.size() >> 8);
      out += static_cast<char>(o_.topic.size() & 0xFF);
      out += o_.topic;
      out += payload;
    } else {
      loop_.queue_text(publisher_, R"({"type":"publish","topic":")" + o_.topic + R"(","payload":)" +
                                       payload + "}");
    }
  }

  std::size_t publisher_backlog() const {
    return mqtt_.fd >= 0 ? mqtt_.out.size() - mqtt_.out_off
                         : publisher_.out.size() - publisher_.out_off;
  }

  void flush_publisher() {
    if (mqtt_.fd >= 0) {
      flush_mqtt();
    } else if (publisher_.fd >= 0) {
      loop_.flush(publisher_);
    }
  }

  void on_message(Conn& c, std::string_view text, std::uint64_t t) {
    std::int64_t seq = 0;
    std::int64_t ts = 0;
    const std::size_t at = text.find(R"("payload")");
    if (at == std::string_view::npos || !find_int(text, R"("s":)", seq, at) ||
        !find_int(text, R"("t":)", ts, at)) {
      ++foreign_messages_;
      return;
    }
    if (seq > c.max_seq) {
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

  int run_fanout() {
    const bool publishes = index_ == 0;
    if (publishes) {
      if (o_.publisher == "ws") {
        publisher_.tag = kPublisher;
        if (!loop_.connect_ws(publisher_, o_.url)) die("publisher: cannot connect");
        const std::uint64_t deadline = now_ns() + 10 * kSec;
        while (!publisher_ready_ && now_ns() < deadline && publisher_.fd >= 0) loop_.poll(20);
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
          timeout =
              next_at > static_cast<double>(now)
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
      loop_.poll(timeout);
    }
    const std::uint64_t pub_stop = now_ns();
    // Drain: until every local subscriber has the last message (the publisher's process knows
    // it), or nothing arrived for --drain-quiet, or --drain-max.
    const std::uint64_t drain_deadline = pub_stop + static_cast<std::uint64_t>(o_.drain_max * kSec);
    const auto quiet = static_cast<std::uint64_t>(o_.drain_quiet * kSec);
    while (true) {
      flush_publisher();
      loop_.poll(5);
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

  // ---- rpc ------------------------------------------------------------------------------------
  void send_request(Conn& c, std::uint64_t t) {
    const std::uint64_t id = c.next_id++;
    c.inflight.emplace_back(id, t);
    ++requests_;
    loop_.send_text(c, R"({"type":"request","id":)" + std::to_string(id) + R"(,"method":")" +
                           o_.method + R"(","path":")" + o_.path + R"(","headers":{}})");
  }

  void finish_request(Conn& c, std::uint64_t id, std::int64_t status, std::uint64_t t,
                      bool response) {
    auto it = std::find_if(c.inflight.begin(), c.inflight.end(),
                           [&](const auto& p) { return p.first == id; });
    if (it == c.inflight.end()) {
      ++unmatched_;
      return;
    }
    const std::uint64_t sent = it->second;
    c.inflight.erase(it);
    if (response) {
      ++responses_;
      if (status >= 200 && status < 300) {
        ++ok_;
      } else {
        ++non2xx_;
      }
      if (sent >= window_start_ && sent <= pub_end_) hist_.record(t - sent);
      if (t >= window_start_ && t <= pub_end_) ++in_window_;
    }
    if (t < pub_end_ && c.fd >= 0) send_request(c, now_ns());
  }

  void on_response(Conn& c, std::string_view text, std::uint64_t t, bool keys_in_order) {
    std::int64_t id = 0;
    std::int64_t status = 0;
    if (!find_key_int(text, R"("id":)", id, keys_in_order)) {
      ++unmatched_;
      return;
    }
    find_key_int(text, R"("status":)", status, keys_in_order);
    finish_request(c, static_cast<std::uint64_t>(id), status, t, true);
  }

  int run_rpc() {
    ramp(conns_.size());
    report("READY", base_kv());
    const std::string go = wait_command();
    t0_ = std::strtoull(go.c_str() + 3, nullptr, 10);
    window_start_ = t0_ + static_cast<std::uint64_t>(o_.warmup * kSec);
    pub_end_ = t0_ + static_cast<std::uint64_t>(o_.duration * kSec);
    const std::uint64_t cpu_start = cpu_us();
    while (now_ns() < t0_) loop_.poll(1);
    for (auto& c : conns_) {
      if (c.fd < 0 || !c.ready) continue;
      for (unsigned d = 0; d < o_.depth; ++d) send_request(c, now_ns());
    }
    while (now_ns() < pub_end_) loop_.poll(10);
    const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(o_.drain_max * kSec);
    auto pending = [&] {
      std::size_t n = 0;
      for (const auto& c : conns_) n += c.fd >= 0 ? c.inflight.size() : 0;
      return n;
    };
    while (pending() > 0 && now_ns() < deadline) loop_.poll(10);
    Kv kv = base_kv();
    kv["requests"] = std::to_string(requests_);
    kv["responses"] = std::to_string(responses_);
    kv["ok"] = std::to_string(ok_);
    kv["non2xx"] = std::to_string(non2xx_);
    kv["unanswered"] = std::to_string(pending());
    kv["unmatched"] = std::to_string(unmatched_);
    kv["in_window"] = std::to_string(in_window_);
    kv["run_cpu_us"] = std::to_string(cpu_us() - cpu_start);
    kv["hist"] = hist_.serialize();
    report("RESULT", kv);
    finish();
    return 0;
  }

  const Options& o_;
  unsigned index_;
  Loop loop_;
  Conn control_;
  Conn publisher_;
  Conn mqtt_;
  std::vector<Conn> conns_;
  std::vector<std::string> commands_;
  std::string padding_;
  bool ramping_ = false;
  bool publisher_ready_ = false;
  std::size_t next_start_ = 0;
  std::size_t in_progress_ = 0;
  std::size_t ready_count_ = 0;
  std::uint64_t t0_ = 0;
  std::uint64_t window_start_ = 0;
  std::uint64_t pub_end_ = 0;
  std::uint64_t published_ = 0;
  std::uint64_t delivered_ = 0;
  std::uint64_t last_delivery_ = 0;
  std::uint64_t in_window_ = 0;
  std::uint64_t foreign_messages_ = 0;
  std::uint64_t requests_ = 0, responses_ = 0, ok_ = 0, non2xx_ = 0, unmatched_ = 0;
  Histogram hist_;
};

// ---------------------------------------------------------------------------------------------
// Parent side: forks the children, runs the barriers, merges and prints.

class Parent {
 public:
  explicit Parent(const Options& o) : o_(o) {}

  int run() {
    for (unsigned i = 0; i < o_.procs; ++i) {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) die("socketpair failed");
      std::fflush(stdout);
      const pid_t pid = fork();
      if (pid < 0) die("fork failed");
      if (pid == 0) {
        for (int fd : fds_) ::close(fd);
        ::close(sv[0]);
        Child child(o_, i, sv[1]);
        std::_Exit(child.run());
      }
      ::close(sv[1]);
      fds_.push_back(sv[0]);
      pids_.push_back(pid);
      buffers_.emplace_back();
    }
    const std::size_t barriers = o_.mode == "idle" ? o_.steps.size() : 1;
    for (std::size_t b = 0; b < barriers; ++b) {
      const auto ready = collect("READY");
      Kv sum = merge(ready);
      std::string line = R"({"event":"ready","mode":")" + o_.mode + R"(","step":)" +
                         std::to_string(b) + R"(,"target":)" +
                         std::to_string(o_.mode == "idle" ? o_.steps[b] : o_.connections) +
                         R"(,"open":)" + sum["open"] + R"(,"ready":)" + sum["ready"] +
                         R"(,"errors":)" + errors_json(sum) + "}";
      emit(line);
      wait_continue();
      const std::uint64_t t0 = now_ns() + static_cast<std::uint64_t>(o_.settle * 1e9);
      for (int fd : fds_) write_all(fd, "GO " + std::to_string(t0) + "\n");
    }
    const auto results = collect("RESULT");
    emit(result_json(results));
    if (o_.wait_stdin) wait_continue();
    for (int fd : fds_) write_all(fd, "END\n");
    int status = 0;
    for (pid_t pid : pids_) {
      int st = 0;
      waitpid(pid, &st, 0);
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) status = 1;
    }
    return status;
  }

 private:
  static void emit(const std::string& line) {
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }

  void wait_continue() {
    if (o_.wait_stdin) {
      // A line (or EOF) on stdin.
      char c;
      while (true) {
        const ssize_t n = ::read(0, &c, 1);
        if (n <= 0 || c == '\n') break;
      }
    } else if (o_.hold > 0) {
      ::usleep(static_cast<useconds_t>(o_.hold * 1e6));
    }
  }

  std::vector<Kv> collect(const char* verb) {
    std::vector<Kv> out(fds_.size());
    std::vector<bool> got(fds_.size(), false);
    std::size_t remaining = fds_.size();
    while (remaining > 0) {
      std::vector<pollfd> pfds;
      for (int fd : fds_) pfds.push_back({fd, POLLIN, 0});
      if (::poll(pfds.data(), pfds.size(), -1) < 0) continue;
      for (std::size_t i = 0; i < fds_.size(); ++i) {
        if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[65536];
        const ssize_t n = ::read(fds_[i], buf, sizeof buf);
        if (n <= 0) die("a child process died (see its stderr)");
        buffers_[i].append(buf, static_cast<std::size_t>(n));
        std::size_t nl;
        while ((nl = buffers_[i].find('\n')) != std::string::npos) {
          const std::string line = buffers_[i].substr(0, nl);
          buffers_[i].erase(0, nl + 1);
          if (line.starts_with(verb) && !got[i]) {
            out[i] = parse_kv(line);
            got[i] = true;
            --remaining;
          }
        }
      }
    }
    return out;
  }

  static Kv merge(const std::vector<Kv>& parts) {
    std::map<std::string, unsigned long long> sums;
    for (const auto& kv : parts) {
      for (const auto& [k, v] : kv) {
        if (k == "hist") continue;
        sums[k] += std::strtoull(v.c_str(), nullptr, 10);
      }
    }
    Kv out;
    for (const auto& [k, v] : sums) out[k] = std::to_string(v);
    return out;
  }

  static std::string errors_json(Kv& sum) {
    std::string out = "{";
    bool first = true;
    std::uint64_t total = 0;
    for (const auto& [k, v] : sum) {
      std::string name;
      if (k.starts_with("err_")) {
        name = k.substr(4);
        total += std::strtoull(v.c_str(), nullptr, 10);
      } else if (k.starts_with("close_")) {
        name = k;
      } else {
        continue;
      }
      out += (first ? "\"" : ",\"") + name + "\":" + v;
      first = false;
    }
    out += std::string(first ? "" : ",") + "\"total\":" + std::to_string(total) + "}";
    return out;
  }

  static std::string fmt(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
  }

  static std::string latency_json(const Histogram& h) {
    auto us = [](std::uint64_t ns) { return fmt(static_cast<double>(ns) / 1000.0); };
    return R"({"count":)" + std::to_string(h.count()) + R"(,"mean":)" + fmt(h.mean() / 1000.0) +
           R"(,"p50":)" + us(h.quantile(0.50)) + R"(,"p90":)" + us(h.quantile(0.90)) +
           R"(,"p99":)" + us(h.quantile(0.99)) + R"(,"p999":)" + us(h.quantile(0.999)) +
           R"(,"max":)" + us(h.max()) + "}";
  }

  std::string result_json(const std::vector<Kv>& parts) {
    Histogram h;
    for (const auto& kv : parts) {
      if (auto it = kv.find("hist"); it != kv.end()) h.merge(Histogram::parse(it->second));
    }
    Kv sum = merge(parts);
    auto u = [&](const char* k) { return std::strtoull(sum[k].c_str(), nullptr, 10); };
    const double window = o_.duration - o_.warmup;
    std::string out = R"({"event":"result","mode":")" + o_.mode + R"(","procs":)" +
                      std::to_string(o_.procs) + R"(,"connections":)" +
                      std::to_string(o_.connections) + R"(,"open":)" + sum["open"] +
                      R"(,"ready":)" + sum["ready"] + R"(,"errors":)" + errors_json(sum) +
                      R"(,"loadgen_cpu_seconds":)" + fmt(static_cast<double>(u("cpu_us")) / 1e6);
    if (o_.mode == "fanout") {
      const std::uint64_t published = u("published");
      const std::uint64_t subscribed = u("subscribed_at_start");
      const std::uint64_t expected = published * subscribed;
      const std::uint64_t unique = u("unique");
      const double pub_seconds = static_cast<double>(u("pub_stop_ns") - u("pub_start_ns")) / 1e9;
      out += R"(,"subscribers":)" + std::to_string(subscribed) + R"(,"rate_target":)" +
             fmt(o_.rate) + R"(,"published":)" + std::to_string(published) +
             R"(,"publish_seconds":)" + fmt(pub_seconds) + R"(,"publish_rate":)" +
             fmt(pub_seconds > 0 ? static_cast<double>(published) / pub_seconds : 0) +
             R"(,"expected":)" + std::to_string(expected) + R"(,"delivered":)" +
             std::to_string(unique) + R"(,"missing":)" +
             std::to_string(expected > unique ? expected - unique : 0) + R"(,"duplicates":)" +
             sum["dups"] + R"(,"window_seconds":)" + fmt(window) + R"(,"delivered_in_window":)" +
             sum["in_window"] + R"(,"delivered_per_second":)" +
             fmt(window > 0 ? static_cast<double>(u("in_window")) / window : 0) + R"(,"stalls":)" +
             sum["stalls"] + R"(,"foreign_messages":)" + sum["foreign"] +
             R"(,"loadgen_run_cpu_seconds":)" + fmt(static_cast<double>(u("run_cpu_us")) / 1e6) +
             R"(,"latency_us":)" + latency_json(h);
    } else if (o_.mode == "rpc") {
      out += R"(,"depth":)" + std::to_string(o_.depth) + R"(,"requests":)" + sum["requests"] +
             R"(,"responses":)" + sum["responses"] + R"(,"ok":)" + sum["ok"] + R"(,"non2xx":)" +
             sum["non2xx"] + R"(,"unanswered":)" + sum["unanswered"] + R"(,"unmatched":)" +
             sum["unmatched"] + R"(,"window_seconds":)" + fmt(window) +
             R"(,"responses_per_second":)" +
             fmt(window > 0 ? static_cast<double>(u("in_window")) / window : 0) +
             R"(,"loadgen_run_cpu_seconds":)" + fmt(static_cast<double>(u("run_cpu_us")) / 1e6) +
             R"(,"latency_us":)" + latency_json(h);
    }
    out += "}";
    return out;
  }

  const Options& o_;
  std::vector<int> fds_;
  std::vector<pid_t> pids_;
  std::vector<std::string> buffers_;
};

// ---------------------------------------------------------------------------------------------
// httpd: a keep-alive HTTP/1.1 backend answering every request with the same small JSON body.

int run_httpd(const Options& o) {
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(o.http_port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(lfd, 4096) != 0) {
    die("httpd: cannot listen");
  }
  socklen_t alen = sizeof addr;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &alen);
  std::printf("{\"event\":\"listening\",\"port\":%u}\n", ntohs(addr.sin_port));
  std::fflush(stdout);

  std::string body = R"({"ok":true,"data":")";
  body += std::string(o.http_body > 24 ? o.http_body - 24 : 0, 'x');
  body += "\"}";
  const std::string response =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;

  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  struct Peer {
    std::string in;
    std::string out;
  };
  std::map<int, Peer> peers;
  std::vector<char> buf(65536);
  epoll_event events[256];
  auto drop = [&](int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    peers.erase(fd);
  };
  // Writes what it can; the rest waits for EPOLLOUT. False when the peer is gone.
  auto flush = [&](int fd, Peer& p) {
    while (!p.out.empty()) {
      const ssize_t n = ::send(fd, p.out.data(), p.out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        p.out.erase(0, static_cast<std::size_t>(n));
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        break;
      } else {
        return false;
      }
    }
    epoll_event pev{};
    pev.events = EPOLLIN | (p.out.empty() ? 0u : static_cast<std::uint32_t>(EPOLLOUT));
    pev.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &pev);
    return true;
  };
  while (true) {
    const int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == lfd) {
        while (true) {
          const int cfd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (cfd < 0) break;
          setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event cev{};
          cev.events = EPOLLIN;
          cev.data.fd = cfd;
          epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
          peers[cfd];
        }
        continue;
      }
      auto it = peers.find(fd);
      if (it == peers.end()) continue;
      Peer& p = it->second;
      if (events[i].events & EPOLLOUT) {
        if (!flush(fd, p)) {
          drop(fd);
          continue;
        }
      }
      if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      const ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
      if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        drop(fd);
        continue;
      }
      p.in.append(buf.data(), static_cast<std::size_t>(r));
      while (true) {  // every complete request (pipelined ones too) gets the same answer
        const std::size_t end = p.in.find("\r\n\r\n");
        if (end == std::string::npos) break;
        std::size_t content_length = 0;
        const std::string head = p.in.substr(0, end);
        for (std::size_t q = head.find("\r\n"); q != std::string::npos;
             q = head.find("\r\n", q + 2)) {
          if (strncasecmp(head.c_str() + q + 2, "content-length:", 15) == 0) {
            content_length = std::strtoul(head.c_str() + q + 17, nullptr, 10);
          }
        }
        if (p.in.size() < end + 4 + content_length) break;
        p.in.erase(0, end + 4 + content_length);
        p.out += response;
      }
      if (!flush(fd, p)) drop(fd);
    }
  }
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  const bench::Options o = bench::parse_options(argc, argv);
  bench::raise_fd_limit();
  if (o.mode == "httpd") return bench::run_httpd(o);
  bench::Parent parent(o);
  return parent.run();
}
