// Key=value lines between the load generator's parent and children, and per-process helpers.
#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>

#include "control.hpp"

namespace bench {

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
  kv["err_corrupt"] = std::to_string(e.corrupt);
  kv["err_tls"] = std::to_string(e.tls);
  for (const auto& [code, n] : e.close_codes)
    kv["close_" + std::to_string(code)] = std::to_string(n);
}

}  // namespace bench
