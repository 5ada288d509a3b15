// Other instances' presence from their sealed messages (presence_book.hpp).
#include "cluster/presence_book.hpp"

#include <algorithm>

namespace wsbridge::cluster {

PresenceBook::Change PresenceBook::apply(const std::string& instance, bool up,
                                         const std::string& epoch, std::int64_t ts,
                                         std::int64_t every_ms, std::int64_t now_ms) {
  Entry& e = entries_[instance];
  const bool gone = std::find(e.gone.begin(), e.gone.end(), epoch) != e.gone.end();
  if (up) {
    // Sealed before what was seen already (a replay), or of a connection that went down.
    if (ts <= e.latest_ts || gone) return Change::kNone;
    e.latest_ts = ts;
    const std::int64_t lifetime = kIntervalsMissed * every_ms;
    // Not renewed for longer than it may be (a retained "up" whose instance died unheard).
    if (every_ms > 0 && now_ms - ts > lifetime + kSkewAllowanceMs) return Change::kNone;
    const bool was_up = e.up;
    e.up = true;
    e.epoch = epoch;
    e.expires_ms = every_ms > 0 ? now_ms + lifetime : 0;
    return was_up ? Change::kNone : Change::kUp;
  }
  // A will is sealed when its connection opens, before that connection's "up": its time says
  // nothing about order, its epoch says which connection ended.
  e.latest_ts = std::max(e.latest_ts, ts);
  if (!gone) {
    e.gone.push_back(epoch);
    if (e.gone.size() > kGoneKept) e.gone.pop_front();
  }
  if (!e.up || e.epoch != epoch) return Change::kNone;
  e.up = false;
  return Change::kDown;
}

std::vector<std::string> PresenceBook::expire(std::int64_t now_ms) {
  std::vector<std::string> silent;
  for (auto& [name, e] : entries_) {
    if (e.up && e.expires_ms != 0 && now_ms >= e.expires_ms) {
      // Not a "down" of its epoch: a later "up" of it (a partition healed) counts again.
      e.up = false;
      silent.push_back(name);
    }
  }
  return silent;
}

std::set<std::string> PresenceBook::up() const {
  std::set<std::string> out;
  for (const auto& [name, e] : entries_) {
    if (e.up) out.insert(name);
  }
  return out;
}

std::size_t PresenceBook::up_count() const {
  return static_cast<std::size_t>(
      std::count_if(entries_.begin(), entries_.end(), [](const auto& e) { return e.second.up; }));
}

bool PresenceBook::is_up(const std::string& instance) const {
  const auto it = entries_.find(instance);
  return it != entries_.end() && it->second.up;
}

}  // namespace wsbridge::cluster
