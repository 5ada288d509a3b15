// Other instances' presence from their sealed messages (presence_book.hpp).
#include "cluster/presence_book.hpp"

#include <algorithm>

namespace wsbridge::cluster {

PresenceBook::Change PresenceBook::apply(const std::string& instance, bool up,
                                         const std::string& epoch, std::int64_t ts) {
  Entry& e = entries_[instance];
  const bool gone = std::find(e.gone.begin(), e.gone.end(), epoch) != e.gone.end();
  if (up) {
    // Sealed before what was seen already (a replay), or of a connection that went down.
    if (ts <= e.latest_ts || gone) return Change::kNone;
    e.latest_ts = ts;
    const bool was_up = e.up;
    e.up = true;
    e.epoch = epoch;
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

std::set<std::string> PresenceBook::up() const {
  std::set<std::string> out;
  for (const auto& [name, e] : entries_) {
    if (e.up) out.insert(name);
  }
  return out;
}

bool PresenceBook::is_up(const std::string& instance) const {
  const auto it = entries_.find(instance);
  return it != entries_.end() && it->second.up;
}

}  // namespace wsbridge::cluster
