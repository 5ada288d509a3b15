#include "retain_rounds.hpp"

#include <unordered_set>

#include "topic.hpp"

namespace wsbridge::mqtt {

RetainRounds::Group* RetainRounds::pending(const std::string& filter) {
  for (auto& g : groups_) {
    if (!g.open && g.filter == filter) return &g;
  }
  return nullptr;
}

void RetainRounds::wait(const std::string& filter, ConnectionId id) {
  Group* g = pending(filter);
  if (g == nullptr) g = &groups_.emplace_back(Group{filter, false, {}, {}, {}});
  g->members.try_emplace(id, ++mark_);
}

std::vector<ConnectionId> RetainRounds::waiting(const std::string& filter) const {
  std::vector<ConnectionId> ids;
  for (const auto& g : groups_) {
    if (g.open || g.filter != filter) continue;
    for (const auto& [id, joined] : g.members) ids.push_back(id);
  }
  return ids;
}

void RetainRounds::acked(const std::string& filter, Clock::time_point now) {
  prune(now);
  if (Group* g = pending(filter)) {
    g->open = true;
    g->until = now + kQuiet;
  }
}

std::vector<ConnectionId> RetainRounds::take_waiting(const std::string& filter) {
  std::vector<ConnectionId> ids;
  for (auto it = groups_.begin(); it != groups_.end(); ++it) {
    if (it->open || it->filter != filter) continue;
    for (const auto& [id, joined] : it->members) ids.push_back(id);
    groups_.erase(it);
    break;
  }
  return ids;
}

void RetainRounds::join_open(const std::string& filter, ConnectionId id,
                             const std::vector<std::string>& had, Clock::time_point now) {
  prune(now);
  bool any_open = false;
  for (const auto& g : groups_) any_open |= g.open && g.filter == filter;
  if (!any_open) return;  // every copy has arrived: `had` is complete
  // A group of its own: its marks are this session's alone.
  Group& g = groups_.emplace_back(Group{filter, true, now + kQuiet, {}, {}});
  g.members.emplace(id, ++mark_);
  for (const auto& topic : had) g.had[topic] = ++mark_;
}

void RetainRounds::close(const std::string& filter) {
  groups_.remove_if([&](const Group& g) { return g.open && g.filter == filter; });
}

void RetainRounds::leave(const std::string& filter, ConnectionId id) {
  for (auto it = groups_.begin(); it != groups_.end();) {
    if (it->filter == filter) it->members.erase(id);
    it = it->members.empty() ? groups_.erase(it) : std::next(it);
  }
}

void RetainRounds::live(std::string_view topic) {
  for (auto& g : groups_) {
    if (filter_matches(g.filter, topic)) g.had[std::string(topic)] = ++mark_;
  }
}

RetainRounds::CopyTargets RetainRounds::copy(std::string_view topic, Clock::time_point now) {
  prune(now);
  CopyTargets out;
  std::unordered_set<ConnectionId> delivered;
  const std::string key(topic);
  for (auto& g : groups_) {
    if (!filter_matches(g.filter, topic)) continue;
    if (!g.open) {  // waiting for its own SUBACK's copies, which will bring this topic too
      for (const auto& [id, joined] : g.members) out.involved.push_back(id);
      continue;
    }
    const auto had = g.had.find(key);
    for (const auto& [id, joined] : g.members) {
      out.involved.push_back(id);
      const bool has = had != g.had.end() && had->second > joined;
      if (!has && delivered.insert(id).second) out.deliver.push_back(id);
    }
    g.had[key] = ++mark_;
    g.until = now + kQuiet;
  }
  return out;
}

void RetainRounds::connection_lost() {
  groups_.remove_if([](const Group& g) { return g.open; });
}

void RetainRounds::prune(Clock::time_point now) {
  groups_.remove_if([now](const Group& g) { return g.open && g.until < now; });
}

}  // namespace wsbridge::mqtt
