// The fallback POSTs in flight of each session, counted across the service threads: a session's
// POSTs land on any of them (SO_REUSEPORT), so a count kept by each thread let a session have
// the limit's number on every thread at once. A session is named by its instance and its
// connection number: numbers are per instance, so another instance's session 8 (a POST on its
// way there) is not this one's 8, whose POSTs it would otherwise block. Safe from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace wsbridge {

class SessionPostCounts {
 public:
  // One more POST for `session` unless it has `limit` already; `held` says how many it has.
  // `session`: {"" for this instance's own or the owner's instance id, connection number}.
  using SessionKey = std::pair<std::string, std::uint64_t>;

  bool try_claim(const SessionKey& session, unsigned limit, unsigned& held) {
    std::lock_guard lock(mutex_);
    unsigned& n = counts_[session];
    held = n;
    if (n >= limit) return false;
    ++n;
    return true;
  }
  void release(const SessionKey& session) {
    std::lock_guard lock(mutex_);
    if (auto it = counts_.find(session); it != counts_.end() && --it->second == 0) {
      counts_.erase(it);
    }
  }

 private:
  std::mutex mutex_;
  std::map<SessionKey, unsigned> counts_;  // sessions with a POST in flight
};

}  // namespace wsbridge
