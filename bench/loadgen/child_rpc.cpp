// The rpc mode's child side: request frames in a closed loop, --depth in flight per connection,
// timed by their responses.
#include <cstdlib>

#include "child.hpp"

namespace bench {

void Child::send_request(Conn& c, std::uint64_t t) {
  const std::uint64_t id = c.next_id++;
  c.inflight.emplace_back(id, t);
  ++requests_;
  loop_.send_text(c, R"({"type":"request","id":)" + std::to_string(id) + R"(,"method":")" +
                         o_.method + R"(","path":")" + o_.path + R"(","headers":{}})");
}

void Child::finish_request(Conn& c, std::uint64_t id, std::int64_t status, std::uint64_t t,
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

void Child::on_response(Conn& c, std::string_view text, std::uint64_t t, bool keys_in_order) {
  std::int64_t id = 0;
  std::int64_t status = 0;
  if (!find_key_int(text, R"("id":)", id, keys_in_order)) {
    ++unmatched_;
    return;
  }
  find_key_int(text, R"("status":)", status, keys_in_order);
  finish_request(c, static_cast<std::uint64_t>(id), status, t, true);
}

int Child::run_rpc() {
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

}  // namespace bench
