// Topics and filters for exhaustive cross-checks against filter_matches, shared by topic_test.cpp
// (filter_covers) and topic_trie_test.cpp (the trie).
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace wsbridge::mqtt::topic_universe {

// Small universe for exhaustive cross-checks: every valid filter of up to three levels from
// `filter_levels` (plus an optional final '#'), every topic of up to four levels from
// `topic_levels`. "z" appears in no filter, so it stands for "any other level"; with one level
// more than the longest filter prefix, a topic witnessing "not covered" exists in the universe
// whenever one exists at all.
inline std::vector<std::string> all_paths(const std::vector<std::string>& levels,
                                          std::size_t max_depth) {
  std::vector<std::string> out;
  std::vector<std::string> current = {""};
  for (std::size_t depth = 1; depth <= max_depth; ++depth) {
    std::vector<std::string> next;
    for (const std::string& prefix : current) {
      for (const std::string& level : levels) {
        next.push_back(depth == 1 ? level : prefix + "/" + level);
      }
    }
    for (const std::string& path : next) {
      if (!path.empty()) out.push_back(path);  // (no topic or filter is empty)
    }
    current = std::move(next);
  }
  return out;
}

inline std::vector<std::string> universe_filters() {
  std::vector<std::string> out = all_paths({"a", "$s", "", "+"}, 3);
  const std::size_t plain = out.size();
  out.push_back("#");
  out.push_back("/#");  // the one-level prefix "" is no filter by itself, but "/#" is
  for (std::size_t i = 0; i < plain; ++i) out.push_back(out[i] + "/#");
  return out;
}

inline std::vector<std::string> universe_topics() {
  return all_paths({"a", "$s", "", "z"}, 4);
}

}  // namespace wsbridge::mqtt::topic_universe
