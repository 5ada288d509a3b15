// The fallback POSTs in flight of each session, counted across the service threads: a session's
// POSTs land on any of them (SO_REUSEPORT), so a count kept by each thread let a session have
// the limit's number on every thread at once. Safe from any thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace wsbridge {

class SessionPostCounts {
 public:
  // One more POST for `session` unless it has `limit` already; `held` says how many it has.
  bool try_claim(std::uint64_t session, unsigned limit, unsigned& held) {
    std::lock_guard lock(mutex_);
    unsigned& n = counts_[session];
    held = n;
    if (n >= limit) return false;
    ++n;
    return true;
  }
  void release(std::uint64_t session) {
    std::lock_guard lock(mutex_);
    if (auto it = counts_.find(session); it != counts_.end() && --it->second == 0) {
      counts_.erase(it);
    }
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::uint64_t, unsigned> counts_;  // sessions with a POST in flight
};

}  // namespace wsbridge
