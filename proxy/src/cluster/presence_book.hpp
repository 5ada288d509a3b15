// Which other instances are up, from their sealed presence messages (cluster_bus.cpp). Every
// broker connection of an instance has an epoch (a random name): its "up" and its will's "down"
// carry it. A "down" ends only the epoch it names, so a replayed "down" of an old connection
// cannot take a live instance out of the lists; an "up" counts only when it was sealed after
// everything seen of that instance so far and its epoch has not gone down, so a replayed "up" of
// a dead instance cannot bring back a ghost the lists would wait for. The empty retained message
// that once meant "gone" is anybody's to publish and means nothing here. Pure: unit-tested.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>

namespace wsbridge::cluster {

class PresenceBook {
 public:
  enum class Change : std::uint8_t { kNone, kUp, kDown };

  // A presence message that opened with a valid seal from `instance` (`ts`: its seal's time,
  // in the sender's clock).
  Change apply(const std::string& instance, bool up, const std::string& epoch, std::int64_t ts);
  std::set<std::string> up() const;
  bool is_up(const std::string& instance) const;

 private:
  struct Entry {
    bool up = false;
    std::string epoch;             // of the "up" in force
    std::int64_t latest_ts = 0;    // the latest seal seen from this instance
    std::deque<std::string> gone;  // epochs that went down, the last few
  };
  static constexpr std::size_t kGoneKept = 16;
  std::map<std::string, Entry> entries_;
};

}  // namespace wsbridge::cluster
