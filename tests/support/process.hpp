// Helpers for integration tests that run the proxy as a real child process.
#pragma once

#include <sys/types.h>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wsbridge::testing {

// A port 127.0.0.1 can bind now, below the kernel's ephemeral range (process.cpp says why). Racy
// by nature (another process may bind it before the server does), much less so than bind(0).
uint16_t free_tcp_port();

// A per-test-process directory (mkdtemp under /tmp), created on first use and removed
// recursively at normal process exit.
std::string temp_dir();
// Writes `contents` to a new file in temp_dir() and returns its path. The file is named after
// `name_hint` (path separators replaced); if that name was taken, "-N" is inserted before the
// extension, so every call yields a distinct file.
std::string write_temp_file(const std::string& name_hint, const std::string& contents);

// A child process whose stdout+stderr go into a pipe that a background thread drains into a
// buffer (so the child never blocks on a full pipe). stdin is /dev/null. The child gets
// PR_SET_PDEATHSIG=SIGKILL so a crashing test binary does not leave servers holding ports.
class ChildProcess {
 public:
  // argv[0] is looked up in PATH (execvp semantics). extra_env entries are "K=V" and override
  // inherited variables. Throws std::runtime_error if the program cannot be executed.
  static ChildProcess spawn(const std::vector<std::string>& argv,
                            const std::vector<std::string>& extra_env = {});

  ~ChildProcess();  // SIGKILL + reap if still running, then stops the reader thread
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  int pid() const;
  // No-op once the child has been reaped (its pid may have been reused).
  void signal(int sig);
  // Waits for exit; returns the exit status (WEXITSTATUS, or 128+signal) or std::nullopt on
  // timeout. Once reaped, also gives the reader thread a moment to collect trailing output.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // Everything captured so far (thread-safe).
  std::string output() const;
  // Waits until output() contains `needle`; false on timeout or if the process exited (or
  // closed its output) without printing it.
  bool wait_for_output(std::string_view needle, std::chrono::milliseconds timeout);
  bool running();

 private:
  struct State;
  ChildProcess() = default;
  // Reaps without blocking; returns true if the child has exited (now or before).
  bool try_reap();
  void destroy();

  pid_t pid_ = -1;
  std::optional<int> exit_status_;
  std::unique_ptr<State> state_;
};

// The resident set size of a process in KiB (VmRSS in /proc/PID/status), -1 when unknown.
long rss_kib(int pid);

// The most the resident set of a process has been, in KiB (VmHWM), -1 when unknown.
long peak_rss_kib(int pid);

// The CPU a process has used so far (user + system, in clock ticks: 100 a second of one core).
long cpu_ticks(int pid);

// How many file descriptors a process has open (its sockets among them), -1 when unknown: a
// server's accepts and closes, seen from outside.
int open_descriptors(int pid);
// open_descriptors() once it has not changed for `quiet`: the server is done with what came
// before (a readiness probe's connection, closed by the client but perhaps not yet by the
// server, which a per-address count still holds). -1 when it never settles within `timeout`.
int settled_descriptors(int pid, std::chrono::milliseconds quiet = std::chrono::milliseconds(200),
                        std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Polls until a TCP connect to host:port succeeds or timeout.
bool wait_port_open(const std::string& host, uint16_t port, std::chrono::milliseconds timeout);

}  // namespace wsbridge::testing
