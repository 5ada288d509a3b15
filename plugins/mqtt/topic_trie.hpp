// Subscriptions by filter, for matching an incoming topic against every subscribed filter at
// once: a trie with one node per level; '+' and '#' are children like any other level.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace wsbridge::mqtt {

using SubscriberId = std::uint64_t;

class TopicTrie {
 public:
  TopicTrie();
  ~TopicTrie();
  TopicTrie(const TopicTrie&) = delete;
  TopicTrie& operator=(const TopicTrie&) = delete;

  // Adds `id` to `filter` (a valid filter). Returns true when the filter had no subscriber
  // before (the first one: time to SUBSCRIBE at the broker). Adding twice is a no-op (false).
  bool add(std::string_view filter, SubscriberId id);
  // Removes `id` from `filter`. Returns true when the filter has no subscriber left (the last
  // one: time to UNSUBSCRIBE). Removing an absent pair returns false and changes nothing.
  // Empty nodes are pruned.
  bool remove(std::string_view filter, SubscriberId id);
  // Appends to `out` every subscriber of every filter that matches `topic` (MQTT rules, see
  // filter_matches in topic.hpp), each subscriber once even when several of its filters match;
  // `out` is sorted and unique afterwards.
  void match(std::string_view topic, std::vector<SubscriberId>& out) const;
  // Number of subscribers of exactly this filter (0 when unknown).
  std::size_t subscriber_count(std::string_view filter) const;
  // Every filter with at least one subscriber, in no particular order.
  std::vector<std::string> filters() const;
  bool empty() const;

 private:
  struct Node;
  std::unique_ptr<Node> root_;
};

}  // namespace wsbridge::mqtt
