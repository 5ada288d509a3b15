// Which other instances are up, from their sealed presence messages (cluster_bus.cpp). Every
// broker connection of an instance has an epoch (a random name): its "up" and its will's "down"
// carry it. A "down" ends only the epoch it names, so a replayed "down" of an old connection
// cannot take a live instance out of the lists; an "up" counts only when it was sealed after
// everything seen of that instance so far and its epoch has not gone down, so a replayed "up" of
// a dead instance cannot bring back a ghost the lists would wait for. The empty retained message
// that once meant "gone" is anybody's to publish and means nothing here.
//
// An instance says "up" again every little while (its "up" names how often), and one not heard
// from for three of its intervals no longer counts: a will that never came (the broker crashed
// and lost it), a replayed "up" handed to an instance that started after the death, and an empty
// retained message that hid a live instance from a newcomer each last that long at most. Pure:
// unit-tested.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace wsbridge::cluster {

class PresenceBook {
 public:
  enum class Change : std::uint8_t { kNone, kUp, kDown };

  // One presence message that opened with a valid seal from `instance` (`ts`: its seal's time,
  // in the sender's clock). `every_ms`: how often that instance says "up" again (0: it does not,
  // an instance from before that; its "up" then lasts until a "down"). `now_ms`: our clock.
  Change apply(const std::string& instance, bool up, const std::string& epoch, std::int64_t ts,
               std::int64_t every_ms, std::int64_t now_ms);
  // Takes out the instances not heard from in time; returns them.
  std::vector<std::string> expire(std::int64_t now_ms);
  std::set<std::string> up() const;
  std::size_t up_count() const;
  bool is_up(const std::string& instance) const;

  // An "up" sealed longer ago than its lifetime and this (clock skew between the instances) is
  // stale when it arrives: a retained message its instance stopped renewing.
  static constexpr std::int64_t kSkewAllowanceMs = 60'000;
  // How many of an instance's intervals may pass without its "up".
  static constexpr std::int64_t kIntervalsMissed = 3;

 private:
  struct Entry {
    bool up = false;
    std::string epoch;             // of the "up" in force
    std::int64_t latest_ts = 0;    // the latest seal seen from this instance
    std::int64_t expires_ms = 0;   // in our clock; 0: never (an instance that does not renew)
    std::deque<std::string> gone;  // epochs that went down, the last few
  };
  static constexpr std::size_t kGoneKept = 16;
  std::map<std::string, Entry> entries_;
};

}  // namespace wsbridge::cluster
