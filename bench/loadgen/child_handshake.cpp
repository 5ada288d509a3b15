// The handshake mode's child side: its share of --connections clients, each in a loop of connect,
// TLS handshake (wss://: full, never resumed, see ws_tls.cpp), WebSocket upgrade, close frame and
// the server's answer, from GO until --duration. What a reconnect storm costs a server: counted
// are the upgrades completed in the window after --warmup; the latency is connect() to the 101.
#include <cstdlib>

#include "child.hpp"

namespace bench {

namespace {
// A session the server neither completes nor closes in this time is given up (and counted).
constexpr std::uint64_t kStuck = 10 * kSec;
}  // namespace

void Child::start_handshake(Conn& c) {
  c.tag = kSubscriber;
  c.mark = now_ns();  // when this session started
  if (!loop_.connect_ws(c, o_.url)) restart_.push_back(c.index);
}

void Child::handshake_done(Conn& c) {
  const std::uint64_t t = now_ns();
  ++delivered_;
  if (t >= window_start_ && t <= pub_end_) {
    ++in_window_;
    hist_.record(t - c.mark);
  }
  // Nothing else to say: close as a client does (the status frame /mqtt sends may still come).
  loop_.close_after_reply(c);
}

int Child::run_handshake() {
  report("READY", base_kv());
  const std::string go = wait_command();  // GO <t0>
  t0_ = std::strtoull(go.c_str() + 3, nullptr, 10);
  window_start_ = t0_ + static_cast<std::uint64_t>(o_.warmup * kSec);
  pub_end_ = t0_ + static_cast<std::uint64_t>(o_.duration * kSec);
  while (now_ns() < t0_)
    loop_.poll(static_cast<int>(std::max<std::uint64_t>((t0_ - now_ns()) / kMs, 1)));
  const std::uint64_t cpu_start = cpu_us();
  for (auto& c : conns_) start_handshake(c);
  std::uint64_t next_sweep = now_ns() + kSec;
  while (true) {
    loop_.poll(5);
    const std::uint64_t now = now_ns();
    const bool running = now < pub_end_;
    // Started again outside the loop's dispatch: a callback must not reuse the Conn it reports.
    std::vector<std::uint32_t> again;
    again.swap(restart_);
    for (const std::uint32_t i : again) {
      if (running) start_handshake(conns_[i]);
    }
    if (now >= next_sweep) {
      next_sweep = now + kSec;
      for (auto& c : conns_) {
        if (c.fd >= 0 && now > c.mark + kStuck) {
          ++loop_.errors.timeout;
          loop_.close(c, false);
        }
      }
    }
    if (!running) {
      std::size_t open = 0;
      for (const auto& c : conns_) open += c.fd >= 0 ? 1 : 0;
      // The sessions under way finish (their close answered), within a few seconds.
      if (open == 0 || now > pub_end_ + 5 * kSec) break;
    }
  }
  Kv kv = base_kv();
  kv["in_window"] = std::to_string(in_window_);
  kv["handshakes"] = std::to_string(delivered_);
  kv["run_cpu_us"] = std::to_string(cpu_us() - cpu_start);
  kv["hist"] = hist_.serialize();
  report("RESULT", kv);
  loop_.shutting_down = true;
  restart_.clear();
  for (auto& c : conns_) loop_.close(c, false);
  (void)wait_command();  // END
  return 0;
}

}  // namespace bench
