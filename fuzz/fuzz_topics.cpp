// MQTT topic names and filters: validation, filter_matches, filter_covers and the TopicTrie.
//
// The input is split at '\n' into up to three strings s0, s1, s2 (missing ones are empty, hence
// invalid). Each valid filter among them is a filter, each valid name a topic. Checked:
// - validation never crashes; a valid name is also a valid filter;
// - a name used as a filter matches exactly itself: filter_matches(n, t) == (n == t);
// - filter_covers(f, f) for every valid filter;
// - filter_covers(outer, inner) equals its definition, "every topic inner matches, outer matches",
//   computed by brute force over a finite set of topics that is provably enough (see
//   covers_by_enumeration) when that set is small;
// - the TopicTrie holding every valid filter (id i for s_i) returns for each valid topic exactly
// the
//   ids whose filter_matches(filter, topic), sorted and unique; subscriber counts, filters(), add
//   and remove return values are consistent, and removing everything leaves it empty.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "topic.hpp"
#include "topic_trie.hpp"

namespace {

using namespace wsbridge::mqtt;

[[noreturn]] void fail(const char* what, std::string_view a) {
  wsbridge_fuzz::fail("fuzz_topics", what, {a});
}
[[noreturn]] void fail(const char* what, std::string_view a, std::string_view b) {
  wsbridge_fuzz::fail("fuzz_topics", what, {a, b});
}
[[noreturn]] void fail(const char* what, std::string_view a, std::string_view b,
                       std::string_view c) {
  wsbridge_fuzz::fail("fuzz_topics", what, {a, b, c});
}

std::vector<std::string> levels_of(std::string_view text) {
  std::vector<std::string> out;
  while (true) {
    const std::size_t slash = text.find('/');
    out.emplace_back(text.substr(0, slash));
    if (slash == std::string_view::npos) return out;
    text.remove_prefix(slash + 1);
  }
}

std::string join(const std::vector<std::string>& levels) {
  std::string out;
  for (std::size_t i = 0; i < levels.size(); ++i) {
    if (i > 0) out += '/';
    out += levels[i];
  }
  return out;
}

// The definition of filter_covers, by enumeration. Returns -1 when the enumeration would be too
// large, else 1 when every topic `inner` matches is matched by `outer`, 0 when not.
//
// Why a finite set is enough: outer and inner compare a topic's levels only for equality with their
// own literal levels (plus the '$' rule on the first level, and "" being no topic). So any level
// value that is not a literal of either filter can be replaced by one fresh value, and empty
// levels kept: the candidate levels are the literals, "" and a fresh one. A '#' of inner need not
// expand to more than (levels of outer + 1) levels: past that, outer's verdict no longer changes.
int covers_by_enumeration(std::string_view outer, std::string_view inner) {
  const auto outer_levels = levels_of(outer);
  const auto inner_levels = levels_of(inner);
  std::set<std::string> alphabet_set{""};
  for (const auto* levels : {&outer_levels, &inner_levels}) {
    for (const auto& level : *levels) {
      if (level != "+" && level != "#") alphabet_set.insert(level);
    }
  }
  std::string fresh = "f";
  while (alphabet_set.count(fresh) != 0) fresh += 'f';
  alphabet_set.insert(fresh);
  const std::vector<std::string> alphabet(alphabet_set.begin(), alphabet_set.end());
  const std::size_t k = alphabet.size();

  const bool hash = inner_levels.back() == "#";
  std::vector<std::string> fixed(inner_levels.begin(), inner_levels.end() - (hash ? 1 : 0));
  std::size_t plus = 0;
  for (const auto& level : fixed) plus += level == "+" ? 1 : 0;
  const std::size_t max_extra = hash ? outer_levels.size() + 1 : 0;

  // Count the candidates first.
  constexpr double kLimit = 20000;
  double count = 0;
  for (std::size_t extra = 0; extra <= max_extra; ++extra) {
    double n = 1;
    for (std::size_t i = 0; i < plus + extra; ++i) n *= static_cast<double>(k);
    count += n;
    if (count > kLimit) return -1;
  }

  std::vector<std::string> topic;
  for (std::size_t extra = 0; extra <= max_extra; ++extra) {
    const std::size_t slots = plus + extra;
    std::vector<std::size_t> choice(slots, 0);
    while (true) {
      topic.clear();
      std::size_t c = 0;
      for (const auto& level : fixed) topic.push_back(level == "+" ? alphabet[choice[c++]] : level);
      for (std::size_t e = 0; e < extra; ++e) topic.push_back(alphabet[choice[c++]]);
      const std::string t = join(topic);
      if (!topic_name_problem(t) && filter_matches(inner, t) && !filter_matches(outer, t)) return 0;
      // Next choice (odometer).
      std::size_t i = 0;
      while (i < slots && ++choice[i] == k) choice[i++] = 0;
      if (i == slots) break;
    }
  }
  return 1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  {
    std::string_view rest = input;
    for (int i = 0; i < 3; ++i) {
      const std::size_t nl = i < 2 ? rest.find('\n') : std::string_view::npos;
      parts.emplace_back(rest.substr(0, nl));
      if (nl == std::string_view::npos) {
        rest = {};
        break;
      }
      rest.remove_prefix(nl + 1);
    }
    while (parts.size() < 3) parts.emplace_back();
  }

  std::vector<std::size_t> filters;  // indexes of valid filters
  std::vector<std::size_t> names;    // indexes of valid names
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const bool filter_ok = !topic_filter_problem(parts[i]);
    const bool name_ok = !topic_name_problem(parts[i]);
    if (name_ok && !filter_ok) fail("a valid name is not a valid filter", parts[i]);
    if (filter_ok) filters.push_back(i);
    if (name_ok) names.push_back(i);
  }

  // Names as filters match exactly themselves.
  for (std::size_t n : names) {
    for (std::size_t t : names) {
      if (filter_matches(parts[n], parts[t]) != (parts[n] == parts[t])) {
        fail("a name used as a filter must match exactly itself", parts[n], parts[t]);
      }
    }
  }

  for (std::size_t f : filters) {
    if (!filter_covers(parts[f], parts[f])) fail("filter_covers(f, f) is false", parts[f]);
  }
  for (std::size_t outer : filters) {
    for (std::size_t inner : filters) {
      const bool covers = filter_covers(parts[outer], parts[inner]);
      const int expected = covers_by_enumeration(parts[outer], parts[inner]);
      if (expected == 1 && !covers) {
        fail("filter_covers is false, but every topic inner matches, outer matches (outer, inner)",
             parts[outer], parts[inner]);
      }
      if (expected == 0 && covers) {
        fail(
            "filter_covers is true, but a topic matched by inner is not matched by outer "
            "(outer, inner)",
            parts[outer], parts[inner]);
      }
      // Soundness on the topics at hand (also when the enumeration was too large).
      for (std::size_t t : names) {
        if (covers && filter_matches(parts[inner], parts[t]) &&
            !filter_matches(parts[outer], parts[t])) {
          fail("filter_covers(outer, inner) but a topic matches inner and not outer", parts[outer],
               parts[inner], parts[t]);
        }
      }
    }
  }

  // The trie: id i subscribes to filter s_i.
  TopicTrie trie;
  std::set<std::string> distinct;
  for (std::size_t f : filters) {
    const bool first = distinct.insert(parts[f]).second;
    if (trie.add(parts[f], f) != first)
      fail("TopicTrie::add: wrong 'first subscriber' answer", parts[f]);
    if (trie.add(parts[f], f)) fail("TopicTrie::add twice returned true", parts[f]);
  }
  for (const auto& filter : distinct) {
    std::size_t expected = 0;
    for (std::size_t f : filters) expected += parts[f] == filter ? 1 : 0;
    if (trie.subscriber_count(filter) != expected) fail("TopicTrie::subscriber_count", filter);
  }
  {
    const auto listed = trie.filters();
    const std::set<std::string> listed_set(listed.begin(), listed.end());
    if (listed.size() != listed_set.size() || listed_set != distinct) {
      fail("TopicTrie::filters differs from the filters added", input);
    }
  }
  for (std::size_t t : names) {
    std::vector<SubscriberId> expected;
    for (std::size_t f : filters) {
      if (filter_matches(parts[f], parts[t])) expected.push_back(f);
    }
    std::vector<SubscriberId> got;
    trie.match(parts[t], got);
    if (got != expected) fail("TopicTrie::match differs from filter_matches (topic)", parts[t]);
    // Appending to a non-empty vector: sorted and unique together with what was there.
    std::vector<SubscriberId> more{1};
    trie.match(parts[t], more);
    expected.push_back(1);
    std::sort(expected.begin(), expected.end());
    expected.erase(std::unique(expected.begin(), expected.end()), expected.end());
    if (more != expected) fail("TopicTrie::match into a non-empty vector", parts[t]);
  }
  for (std::size_t f : filters) {
    if (trie.remove(parts[f], 100 + f))
      fail("TopicTrie::remove of an absent id returned true", parts[f]);
    std::size_t left = 0;
    for (std::size_t g : filters) left += (g > f && parts[g] == parts[f]) ? 1 : 0;
    if (trie.remove(parts[f], f) != (left == 0))
      fail("TopicTrie::remove: wrong 'last' answer", parts[f]);
    if (trie.remove(parts[f], f)) fail("TopicTrie::remove twice returned true", parts[f]);
  }
  if (!trie.empty()) fail("TopicTrie not empty after removing everything", input);
  if (!trie.filters().empty()) fail("TopicTrie lists filters after removing everything", input);
  return 0;
}
