#include "support/process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "support/ws_test_client.hpp"
#include "support/ws_test_client_util.hpp"

extern char** environ;

namespace wsbridge::testing {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

using client_detail::throw_errno;

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Owns the per-process temp dir. The pid check keeps a forked child (e.g. a gtest death test)
// from deleting the parent's files when it exits normally.
struct TempDir {
  std::string path;
  pid_t owner = ::getpid();
  TempDir() {
    std::string tmpl = "/tmp/wsbridge-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw_errno("mkdtemp(" + tmpl + ")");
    path = tmpl;
  }
  ~TempDir() {
    if (::getpid() != owner) return;
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace

namespace {

// Binds 127.0.0.1:`port` (0: any) and closes; the port bound, or 0.
uint16_t try_bind(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  socklen_t len = sizeof(addr);
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                     ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  return bound ? ntohs(addr.sin_port) : 0;
}

// The low end of the kernel's ephemeral port range (outgoing connections' source ports).
unsigned ephemeral_low() {
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  unsigned low = 32768;
  if (!(range >> low)) low = 32768;
  return low;
}

}  // namespace

// Below the ephemeral range: bind(0) picks from it, where an outgoing connection of a test
// running beside can take the port before the server under test binds it.
uint16_t free_tcp_port() {
  constexpr unsigned kFrom = 10000;
  static const unsigned low = ephemeral_low();
  static std::mutex mutex;
  static std::mt19937 random{std::random_device{}()};
  // Never twice in one test process; never a port browsers refuse to load from (Chromium's and
  // Firefox's restricted ports: 10080 is the one in this range; net::ERR_UNSAFE_PORT).
  static std::set<uint16_t> handed_out{10080};
  std::lock_guard lock(mutex);
  for (int i = 0; i < 200 && low > kFrom + 1000; ++i) {
    const auto port =
        static_cast<uint16_t>(std::uniform_int_distribution<unsigned>(kFrom, low - 1)(random));
    if (handed_out.contains(port) || try_bind(port) != port) continue;
    handed_out.insert(port);
    return port;
  }
  const uint16_t any = try_bind(0);  // a machine whose ephemeral range leaves no room below
  if (any == 0) throw_errno("free_tcp_port: bind");
  return any;
}

std::string temp_dir() {
  static TempDir dir;  // thread-safe lazy init; destroyed (and removed) at exit
  return dir.path;
}

std::string write_temp_file(const std::string& name_hint, const std::string& contents) {
  std::string name = name_hint.empty() ? std::string("file") : name_hint;
  std::replace(name.begin(), name.end(), '/', '_');
  const size_t dot = name.rfind('.');
  const std::string stem = (dot == std::string::npos || dot == 0) ? name : name.substr(0, dot);
  const std::string ext = (dot == std::string::npos || dot == 0) ? "" : name.substr(dot);

  const std::string dir = temp_dir();
  for (int n = 0; n < 10000; ++n) {
    std::string path = dir;
    path += '/';
    if (n == 0) {
      path += name;
    } else {
      path.append(stem).append("-").append(std::to_string(n)).append(ext);
    }
    // O_EXCL makes uniqueness race-free even if tests write files from several threads.
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      throw_errno("open(" + path + ")");
    }
    size_t off = 0;
    while (off < contents.size()) {
      const ssize_t w = ::write(fd, contents.data() + off, contents.size() - off);
      if (w < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        ::close(fd);
        throw_errno("write(" + path + ")", err);
      }
      off += static_cast<size_t>(w);
    }
    if (::close(fd) != 0) throw_errno("close(" + path + ")");
    return path;
  }
  throw std::runtime_error("write_temp_file: no free name for " + name_hint);
}

// Shared between ChildProcess and its reader thread. Heap-allocated so moving the
// ChildProcess does not move what the thread is using.
struct ChildProcess::State {
  mutable std::mutex mu;
  std::condition_variable cv;
  std::string output;
  bool eof = false;
  int out_fd = -1;   // read end of the child's stdout/stderr pipe
  int stop_rd = -1;  // self-pipe: lets the destructor stop the reader even if a grandchild
  int stop_wr = -1;  // still holds the output pipe open
  std::thread reader;

  void run() {
    for (;;) {
      pollfd fds[2] = {{out_fd, POLLIN, 0}, {stop_rd, POLLIN, 0}};
      const int r = ::poll(fds, 2, -1);  // bounded: the destructor always writes stop_wr
      if (r < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[1].revents != 0) break;
      if (fds[0].revents == 0) continue;
      char buf[4096];
      const ssize_t n = ::read(out_fd, buf, sizeof(buf));
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      std::lock_guard<std::mutex> lock(mu);
      if (n <= 0) break;
      output.append(buf, static_cast<size_t>(n));
      cv.notify_all();
    }
    std::lock_guard<std::mutex> lock(mu);
    eof = true;
    cv.notify_all();
  }

  // Waits (bounded) for the reader to hit EOF, so output() after exit is complete.
  void wait_eof(Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_until(lock, deadline, [&] { return eof; });
  }

  ~State() {
    if (reader.joinable()) {
      const char c = 'x';
      while (::write(stop_wr, &c, 1) < 0 && errno == EINTR) {
      }
      reader.join();
    }
    close_fd(out_fd);
    close_fd(stop_rd);
    close_fd(stop_wr);
  }
};

ChildProcess ChildProcess::spawn(const std::vector<std::string>& argv,
                                 const std::vector<std::string>& extra_env) {
  if (argv.empty()) throw std::runtime_error("ChildProcess::spawn: empty argv");

  // Everything the child needs is prepared before fork(): after fork in a multi-threaded
  // process only async-signal-safe calls are allowed (no malloc).
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.emplace_back(*e);
  for (const std::string& kv : extra_env) {
    const std::string key = kv.substr(0, kv.find('='));
    auto it = std::find_if(env.begin(), env.end(), [&](const std::string& e) {
      return e.compare(0, key.size() + 1, key + "=") == 0;
    });
    if (it != env.end()) {
      *it = kv;
    } else {
      env.push_back(kv);
    }
  }
  std::vector<char*> argv_ptrs;
  argv_ptrs.reserve(argv.size() + 1);
  for (const std::string& a : argv) argv_ptrs.push_back(const_cast<char*>(a.c_str()));
  argv_ptrs.push_back(nullptr);
  std::vector<char*> env_ptrs;
  env_ptrs.reserve(env.size() + 1);
  for (const std::string& e : env) env_ptrs.push_back(const_cast<char*>(e.c_str()));
  env_ptrs.push_back(nullptr);

  ChildProcess child;
  child.state_ = std::make_unique<State>();
  State& st = *child.state_;

  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};  // CLOEXEC; carries errno if exec fails, EOF if it succeeds
  int stop_pipe[2] = {-1, -1};
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw_errno("pipe2");
  st.out_fd = out_pipe[0];
  if (::pipe2(stop_pipe, O_CLOEXEC) != 0) {
    close_fd(out_pipe[1]);
    throw_errno("pipe2");
  }
  st.stop_rd = stop_pipe[0];
  st.stop_wr = stop_pipe[1];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    close_fd(out_pipe[1]);
    throw_errno("pipe2");
  }
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0) {
    close_fd(out_pipe[1]);
    close_fd(err_pipe[0]);
    close_fd(err_pipe[1]);
    throw_errno("open(/dev/null)");
  }

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    close_fd(out_pipe[1]);
    close_fd(err_pipe[0]);
    close_fd(err_pipe[1]);
    close_fd(devnull);
    throw_errno("fork", err);
  }
  if (pid == 0) {
    // Child. Die with the test binary so a crashed test never leaves a server on a port.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGPIPE, &dfl, nullptr);
    // dup2 clears FD_CLOEXEC on the targets, so only 0/1/2 survive exec.
    if (::dup2(devnull, 0) < 0 || ::dup2(out_pipe[1], 1) < 0 || ::dup2(out_pipe[1], 2) < 0) {
      const int e = errno;
      [[maybe_unused]] ssize_t w = ::write(err_pipe[1], &e, sizeof(e));
      ::_exit(127);
    }
    ::execvpe(argv_ptrs[0], argv_ptrs.data(), env_ptrs.data());
    const int e = errno;
    [[maybe_unused]] ssize_t w = ::write(err_pipe[1], &e, sizeof(e));
    ::_exit(127);
  }

  // Parent.
  child.pid_ = pid;
  close_fd(out_pipe[1]);
  close_fd(err_pipe[1]);
  close_fd(devnull);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(err_pipe[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  close_fd(err_pipe[0]);
  if (n > 0) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    child.pid_ = -1;
    throw std::runtime_error("cannot execute '" + argv[0] +
                             "': " + std::system_category().message(child_errno));
  }
  st.reader = std::thread([&st] { st.run(); });
  return child;
}

ChildProcess::~ChildProcess() {
  destroy();
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      exit_status_(std::exchange(other.exit_status_, std::nullopt)),
      state_(std::move(other.state_)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    destroy();
    pid_ = std::exchange(other.pid_, -1);
    exit_status_ = std::exchange(other.exit_status_, std::nullopt);
    state_ = std::move(other.state_);
  }
  return *this;
}

void ChildProcess::destroy() {
  if (pid_ > 0 && !exit_status_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    // SIGKILL cannot be caught, so this returns promptly.
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    exit_status_ = -1;
  }
  state_.reset();  // stops and joins the reader thread
}

int ChildProcess::pid() const {
  return pid_;
}

bool ChildProcess::try_reap() {
  if (exit_status_) return true;
  if (pid_ <= 0) return true;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return false;
  if (r < 0) {
    if (errno == EINTR) return false;
    exit_status_ = -1;  // ECHILD: somebody else reaped it; treat as gone
    return true;
  }
  if (WIFEXITED(status)) {
    exit_status_ = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    exit_status_ = 128 + WTERMSIG(status);
  } else {
    exit_status_ = -1;
  }
  return true;
}

void ChildProcess::signal(int sig) {
  // Never signal a reaped pid: the kernel may already have handed it to another process.
  if (pid_ > 0 && !try_reap()) ::kill(pid_, sig);
}

bool ChildProcess::running() {
  return pid_ > 0 && !try_reap();
}

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto backoff = 1ms;
  while (!try_reap()) {
    const auto now = Clock::now();
    if (now >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline - now));
    backoff = std::min(backoff * 2, 20ms);
  }
  if (state_) state_->wait_eof(std::max(deadline, Clock::now() + 200ms));
  return exit_status_;
}

std::string ChildProcess::output() const {
  if (!state_) return {};
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->output;
}

bool ChildProcess::wait_for_output(std::string_view needle, std::chrono::milliseconds timeout) {
  if (!state_) return false;
  const auto deadline = Clock::now() + timeout;
  State& st = *state_;
  std::unique_lock<std::mutex> lock(st.mu);
  size_t searched = 0;  // only rescan the tail that could contain a new match
  for (;;) {
    const size_t from = searched >= needle.size() ? searched - needle.size() : 0;
    if (st.output.find(needle, from) != std::string::npos) return true;
    searched = st.output.size();
    if (st.eof) return false;
    const auto now = Clock::now();
    if (now >= deadline) return false;
    lock.unlock();
    const bool exited = try_reap();
    lock.lock();
    if (exited) {
      // The child is gone; collect what is still in the pipe, then decide.
      st.cv.wait_until(lock, now + 200ms, [&] { return st.eof; });
      return st.output.find(needle) != std::string::npos;
    }
    // Short slices so an exit is noticed even if a grandchild keeps the pipe open.
    st.cv.wait_until(lock, std::min(deadline, now + 50ms));
  }
}

bool wait_port_open(const std::string& host, uint16_t port, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto now = Clock::now();
    const auto slice = std::chrono::ceil<std::chrono::milliseconds>(
        std::min<Clock::duration>(deadline - now, 500ms));
    try {
      TcpConn::connect(host, port, std::max(slice, 1ms));
      return true;
    } catch (const std::runtime_error&) {
    }
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(
        std::min<Clock::duration>(20ms, std::max<Clock::duration>(deadline - Clock::now(), 0ms)));
  }
}

int open_descriptors(int pid) {
  std::error_code ec;
  int n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return ec ? -1 : n;
}

int settled_descriptors(int pid, std::chrono::milliseconds quiet,
                        std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  int last = open_descriptors(pid);
  auto since = Clock::now();
  while (Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const int now = open_descriptors(pid);
    if (now != last) {
      last = now;
      since = Clock::now();
    } else if (Clock::now() - since >= quiet) {
      return now;
    }
  }
  return -1;
}

namespace {

// A "Vm...:" line of /proc/PID/status, in KiB; -1 when there is none.
long status_kib(int pid, std::string_view wanted) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == wanted) {
      long kib = 0;
      in >> kib;
      return kib;
    }
    in.ignore(1 << 20, '\n');
  }
  return -1;
}

}  // namespace

long rss_kib(int pid) {
  return status_kib(pid, "VmRSS:");
}

long peak_rss_kib(int pid) {
  return status_kib(pid, "VmHWM:");
}

long cpu_ticks(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string field;
  long ticks = 0;
  // (Field 2, the command in parentheses, has no blanks here: wsbridge, mosquitto...)
  for (int i = 1; i <= 15 && in >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stol(field);  // utime + stime
  }
  return ticks;
}

}  // namespace wsbridge::testing
