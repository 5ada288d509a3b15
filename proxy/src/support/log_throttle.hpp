// A warning that may repeat at the rate of an attack (connections refused by a limit) is let
// through at most once per interval, with how many times it happened since it last was, so a
// flood never floods the log. Service-thread state: not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>

namespace wsbridge {

class LogThrottle {
 public:
  explicit LogThrottle(std::chrono::steady_clock::duration interval) : interval_(interval) {}

  // One more occurrence: true when it is to be logged (then occurrences() says how many there
  // were since the last logged one, this one included).
  bool due() {
    ++pending_;
    const auto now = std::chrono::steady_clock::now();
    if (logged_once_ && now - last_ < interval_) return false;
    logged_once_ = true;
    last_ = now;
    occurrences_ = pending_;
    pending_ = 0;
    return true;
  }
  std::uint64_t occurrences() const { return occurrences_; }

 private:
  std::chrono::steady_clock::duration interval_;
  std::chrono::steady_clock::time_point last_{};
  bool logged_once_ = false;
  std::uint64_t pending_ = 0;
  std::uint64_t occurrences_ = 0;
};

}  // namespace wsbridge
