#include "soak_probes.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

namespace wsbridge::testing::soak {

using namespace std::chrono_literals;
using nlohmann::json;

// ---- flavour and scale -------------------------------------------------------------------------

// A sanitizer flavour: this test binary is instrumented, or the wsbridge under test is (its
// path is build/asan/... or build/tsan/...).
bool sanitized() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#else
  const std::string binary = WSBRIDGE_BINARY;
  return binary.find("/asan/") != std::string::npos || binary.find("/tsan/") != std::string::npos;
#endif
}

namespace {

int env_int(const char* name, int fallback) {
  // Read on the main thread before any worker starts.
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
  if (value == nullptr || *value == '\0') return fallback;
  return std::max(1, std::atoi(value));
}

}  // namespace

int churn_cycles() {
  return env_int("WSBRIDGE_CHURN_CYCLES", sanitized() ? 2000 : 10000);
}
int soak_seconds() {
  return env_int("WSBRIDGE_SOAK_SECONDS", sanitized() ? 15 : 60);
}
// Sanitized builds are slower at everything: more patience, never a different verdict.
std::chrono::milliseconds patience(std::chrono::milliseconds release) {
  return sanitized() ? release * 4 : release;
}

// ---- what the kernel says about the wsbridge process -------------------------------------------

namespace {

// The targets of the process's open file descriptors ("socket:[123]", "pipe:[4]",
// "anon_inode:[eventpoll]", "/dev/null", ...).
std::vector<std::string> fd_targets(int pid) {
  std::vector<std::string> targets;
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code link_ec;
    const auto target = std::filesystem::read_symlink(entry.path(), link_ec);
    targets.push_back(link_ec ? "?" : target.string());  // "?": closed since the listing
  }
  return targets;
}

}  // namespace

int fd_count(int pid) {
  return static_cast<int>(fd_targets(pid).size());
}

// "socket x12, pipe x2, anon_inode:[eventpoll] x1, ...": for failure messages.
std::string describe_fds(int pid) {
  std::map<std::string, int> kinds;
  for (std::string t : fd_targets(pid)) {
    if (const auto colon = t.find(":["); colon != std::string::npos && !t.starts_with("anon")) {
      t.resize(colon);
    }
    ++kinds[t];
  }
  std::string out;
  for (const auto& [kind, n] : kinds) out += kind + " x" + std::to_string(n) + ", ";
  return out;
}

namespace {

int open_connections(const WsbridgeInstance& server) {
  try {
    const HttpResponse r = http_get("127.0.0.1", server.port, "/healthz");
    return json::parse(r.body)["connections"].get<int>();
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace

// Waits until wsbridge has no WebSocket connection left and its descriptor count has settled:
// equal to `expected_fds` when given, else unchanged over half a second (the baseline). Returns
// what it saw last; the caller compares.
Snapshot settle(const WsbridgeInstance& server, std::optional<int> expected_fds) {
  const int pid = server.process->pid();
  const auto deadline = Clock::now() + patience(10s);
  while (open_connections(server) != 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(open_connections(server), 0) << "WebSocket connections still open";
  int fds = fd_count(pid);
  int stable_for = 0;
  while (Clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
    const int now = fd_count(pid);
    if (expected_fds && now == *expected_fds) {
      fds = now;
      break;
    }
    stable_for = now == fds ? stable_for + 1 : 0;
    fds = now;
    if (!expected_fds && stable_for >= 10) break;
  }
  return {fds, rss_kib(pid)};
}

// ---- the broker's view of wsbridge's subscriptions ---------------------------------------------

namespace {

BrokerSubscriptions broker_subscriptions(const Mosquitto& broker) {
  BrokerSubscriptions out;
  std::istringstream log(broker.log());
  std::string line;
  while (std::getline(log, line)) {
    if (!line.starts_with("wsbridge-")) continue;
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string s; words >> s;) w.push_back(s);
    if (w.size() == 3 && w[1].size() == 1 && std::isdigit(static_cast<unsigned char>(w[1][0]))) {
      ++out.subscribes[w[2]];
      out.active.insert(w[2]);
    } else if (w.size() == 2) {
      ++out.unsubscribes[w[1]];
      out.active.erase(w[1]);
    }
  }
  return out;
}

}  // namespace

// Waits until no filter of wsbridge's is subscribed at the broker any more.
BrokerSubscriptions wait_all_released(const Mosquitto& broker) {
  const auto deadline = Clock::now() + patience(10s);
  BrokerSubscriptions subs = broker_subscriptions(broker);
  while (!subs.active.empty() && Clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
    subs = broker_subscriptions(broker);
  }
  return subs;
}

std::string first_few(const std::set<std::string>& s) {
  std::string out;
  int n = 0;
  for (const auto& x : s) {
    if (n++ == 10) return out + "...";
    out += x + " ";
  }
  return out;
}

// ---- the end of every test ---------------------------------------------------------------------

namespace {

// Where a hung process's threads are, for the failure message (when gdb is installed).
std::string thread_stacks(int pid) {
  if (::access("/usr/bin/gdb", X_OK) != 0) return "(no gdb to show them)";
  try {
    ChildProcess gdb = ChildProcess::spawn(
        {"/usr/bin/gdb", "-p", std::to_string(pid), "-batch", "-ex", "thread apply all bt"});
    gdb.wait_exit(60s);
    return gdb.output();
  } catch (const std::exception& e) {
    return std::string("(gdb failed: ") + e.what() + ")";
  }
}

}  // namespace

// SIGTERM: exit status 0 within the shutdown timeout, and no sanitizer report in the output.
// In the ASan flavour LeakSanitizer runs at that exit (detect_leaks is on by default and in
// scripts/test.sh's ASAN_OPTIONS): a leak fails the exit status and prints its report.
void stop_and_expect_clean_exit(WsbridgeInstance& server) {
  server.process->signal(SIGTERM);
  const auto status = server.process->wait_exit(patience(15s));
  ASSERT_TRUE(status.has_value()) << "wsbridge did not exit after SIGTERM; its threads:\n"
                                  << thread_stacks(server.process->pid());
  EXPECT_EQ(*status, 0);
  const std::string out = server.process->output();
  for (const char* report :
       {"LeakSanitizer", "ERROR: AddressSanitizer", "WARNING: ThreadSanitizer", "runtime error:"}) {
    EXPECT_EQ(out.find(report), std::string::npos) << "wsbridge reported: " << report;
  }
}

}  // namespace wsbridge::testing::soak
