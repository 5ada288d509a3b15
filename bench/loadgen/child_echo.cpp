// The echo mode's child side (bench/proxy.py, issue #18.4): its share of --connections
// WebSockets to an echo server (wsbridge's echo adapter, directly or through a proxy's WebSocket
// pass-through), each keeping --window text messages of --payload bytes in flight (closed loop:
// a message goes out as soon as an earlier one came back) and timing every round trip.
//
// A message is "<seq> <send time in ns> " padded with 'x' to --payload bytes (longer when the
// two numbers need more); what comes back must have the length sent and end as it did, else it
// is counted as corrupt. Before GO each connection sends one message and is ready once it came
// back: the whole path (proxy, backend connection, echo) is up. `idle --echo` uses the same
// readiness instead of a subscription, for the memory of idle connections through a proxy.
#include <cstdlib>
#include <string>

#include "child.hpp"

namespace bench {

void Child::echo_send(Conn& c, std::uint64_t t) {
  std::string text = std::to_string(c.next_id++);
  text += ' ';
  text += std::to_string(t);
  text += ' ';
  if (text.size() < o_.payload) text.append(o_.payload - text.size(), 'x');
  ++requests_;
  loop_.queue_text(c, text);
}

void Child::echo_message(Conn& c, const char* data, std::size_t len, std::uint64_t t) {
  if (!c.ready) {
    // The probe sent on open: the path is up.
    if (c.state == State::kOpen && c.tag == kSubscriber) mark_ready(c);
    return;
  }
  if (o_.mode != "echo") return;  // idle --echo: nothing more is sent
  ++responses_;
  ++c.received;
  const std::string_view text(data, len);
  char* end = nullptr;
  const std::uint64_t seq = std::strtoull(data, &end, 10);
  const std::size_t sp = text.find(' ');
  std::uint64_t sent = 0;
  if (sp != std::string_view::npos) sent = std::strtoull(data + sp + 1, &end, 10);
  // The length this message had when sent: the header, then padding up to --payload.
  const std::size_t header = std::to_string(seq).size() + 1 + std::to_string(sent).size() + 1;
  const std::size_t want = header < o_.payload ? o_.payload : header;
  const bool ok = sp != std::string_view::npos && sent != 0 && len == want &&
                  (len == header || text.back() == 'x');
  if (!ok) {
    ++loop_.errors.corrupt;
  } else {
    if (sent >= window_start_ && sent <= pub_end_) hist_.record(t - sent);
    if (t >= window_start_ && t <= pub_end_) ++in_window_;
  }
  if (t < pub_end_ && c.fd >= 0) {
    echo_send(c, now_ns());
    loop_.flush(c);
  }
}

int Child::run_echo() {
  ramp(conns_.size());
  report("READY", base_kv());
  const std::string go = wait_command();  // GO <t0>
  t0_ = std::strtoull(go.c_str() + 3, nullptr, 10);
  window_start_ = t0_ + static_cast<std::uint64_t>(o_.warmup * kSec);
  pub_end_ = t0_ + static_cast<std::uint64_t>(o_.duration * kSec);
  while (now_ns() < t0_) loop_.poll(1);
  const std::uint64_t cpu_start = cpu_us();
  // Every connection's counts start here: the probe before GO is not one of them.
  requests_ = 0;
  for (auto& c : conns_) {
    c.next_id = 0;
    c.received = 0;
  }
  for (auto& c : conns_) {
    if (c.fd < 0 || !c.ready) continue;
    for (unsigned w = 0; w < o_.window; ++w) echo_send(c, now_ns());
    loop_.flush(c);
  }
  while (now_ns() < pub_end_) loop_.poll(10);
  auto pending = [&] {
    std::uint64_t n = 0;
    for (const auto& c : conns_) n += c.fd >= 0 && c.ready ? c.next_id - c.received : 0;
    return n;
  };
  const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(o_.drain_max * kSec);
  while (pending() > 0 && now_ns() < deadline) loop_.poll(10);
  std::uint64_t lost = 0;  // sent on a connection that closed before its echo came back
  for (const auto& c : conns_)
    lost += c.fd < 0 && c.next_id > c.received ? c.next_id - c.received : 0;
  Kv kv = base_kv();
  kv["sent"] = std::to_string(requests_);
  kv["echoed"] = std::to_string(responses_);
  kv["unanswered"] = std::to_string(pending() + lost);
  kv["in_window"] = std::to_string(in_window_);
  kv["run_cpu_us"] = std::to_string(cpu_us() - cpu_start);
  kv["hist"] = hist_.serialize();
  report("RESULT", kv);
  finish();
  return 0;
}

}  // namespace bench
