// The load generator's parent process: forks the children, runs the barriers, merges the
// children's results and prints them as JSON lines.
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "child.hpp"
#include "control.hpp"
#include "histogram.hpp"
#include "parent.hpp"

namespace bench {
namespace {

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
        if (k == "hist" || k.starts_with("s_")) continue;
        sums[k] += std::strtoull(v.c_str(), nullptr, 10);
      }
    }
    Kv out;
    for (const auto& [k, v] : sums) out[k] = std::to_string(v);
    for (const auto& kv : parts) {
      for (const auto& [k, v] : kv) {
        if (k.starts_with("s_") && !out.contains(k)) out[k] = v;
      }
    }
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
    std::string out =
        R"({"event":"result","mode":")" + o_.mode + R"(","procs":)" + std::to_string(o_.procs) +
        R"(,"connections":)" + std::to_string(o_.connections) + R"(,"open":)" + sum["open"] +
        R"(,"ready":)" + sum["ready"] + R"(,"errors":)" + errors_json(sum) +
        R"(,"loadgen_cpu_seconds":)" + fmt(static_cast<double>(u("cpu_us")) / 1e6) +
        R"(,"messages_in":)" + sum["messages_in"] + R"(,"deflate":{"offered":)" +
        (o_.deflate ? "true" : "false") + R"(,"connections":)" + sum["deflate_conns"] +
        R"(,"no_context_takeover":)" + sum["deflate_no_context"] + R"(,"compressed_messages":)" +
        sum["compressed_in"] + R"(,"wire_bytes":)" + sum["compressed_wire_bytes"] +
        R"(,"inflated_bytes":)" + sum["compressed_plain_bytes"] + R"(,"memo_hits":)" +
        sum["memo_hits"] + R"(},"tls":{"handshakes":)" + sum["tls_handshakes"] + R"(,"resumed":)" +
        sum["tls_resumed"] + R"(,"protocol":")" + sum["s_tls"] + "\"}" +
        R"(,"http":{"transport":")" + o_.transport + R"(","requests":)" + sum["http_requests"] +
        R"(,"posts":)" + sum["http_posts"] + R"(,"reconnects":)" + sum["http_reconnects"] +
        R"(,"lost":)" + sum["http_lost"] + "}";
    if (o_.mode == "fanout" || o_.mode == "publish") {
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
      // publish: "subscribers" is the one counting subscriber, "delivered" what it received.
      if (o_.mode == "publish") {
        out += R"(,"qos":)" + std::to_string(o_.qos) + R"(,"publishers":)" + sum["publishers"] +
               R"(,"acked":)" + sum["acked"];
      }
    } else if (o_.mode == "handshake") {
      out += R"(,"handshakes":)" + sum["handshakes"] + R"(,"window_seconds":)" + fmt(window) +
             R"(,"handshakes_in_window":)" + sum["in_window"] + R"(,"handshakes_per_second":)" +
             fmt(window > 0 ? static_cast<double>(u("in_window")) / window : 0) +
             R"(,"loadgen_run_cpu_seconds":)" + fmt(static_cast<double>(u("run_cpu_us")) / 1e6) +
             R"(,"latency_us":)" + latency_json(h);
    } else if (o_.mode == "echo") {
      out += R"(,"window":)" + std::to_string(o_.window) + R"(,"payload":)" +
             std::to_string(o_.payload) + R"(,"sent":)" + sum["sent"] + R"(,"echoed":)" +
             sum["echoed"] + R"(,"unanswered":)" + sum["unanswered"] + R"(,"window_seconds":)" +
             fmt(window) + R"(,"messages_per_second":)" +
             fmt(window > 0 ? static_cast<double>(u("in_window")) / window : 0) +
             R"(,"loadgen_run_cpu_seconds":)" + fmt(static_cast<double>(u("run_cpu_us")) / 1e6) +
             R"(,"latency_us":)" + latency_json(h);
    } else if (o_.mode == "rpc" || o_.mode == "http") {
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

}  // namespace

int run_parent(const Options& o) {
  Parent parent(o);
  return parent.run();
}

}  // namespace bench
