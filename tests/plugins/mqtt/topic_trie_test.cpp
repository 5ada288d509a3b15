// The subscription trie (plugins/mqtt/topic_trie.cpp): who matches a topic, which filters
// are held, and no recursion per level.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "topic.hpp"
#include "topic_trie.hpp"
#include "topic_universe.hpp"

namespace wsbridge::mqtt {
namespace {

using namespace std::string_literals;
using namespace topic_universe;
using Ids = std::vector<SubscriberId>;

// ---- TopicTrie --------------------------------------------------------------------------------

Ids match_all(const TopicTrie& trie, std::string_view topic) {
  Ids out;
  trie.match(topic, out);
  return out;
}

std::vector<std::string> sorted_filters(const TopicTrie& trie) {
  std::vector<std::string> out = trie.filters();
  std::sort(out.begin(), out.end());
  return out;
}

TEST(TopicTrieTest, StartsEmpty) {
  TopicTrie trie;
  EXPECT_TRUE(trie.empty());
  EXPECT_TRUE(trie.filters().empty());
  EXPECT_EQ(trie.subscriber_count("a"), 0u);
  EXPECT_EQ(match_all(trie, "a"), Ids{});
  EXPECT_FALSE(trie.remove("a", 1));
  EXPECT_TRUE(trie.empty());
}

TEST(TopicTrieTest, AddReportsTheFirstSubscriber) {
  TopicTrie trie;
  EXPECT_TRUE(trie.add("a/b", 1));
  EXPECT_FALSE(trie.empty());
  EXPECT_FALSE(trie.add("a/b", 2));
  EXPECT_FALSE(trie.add("a/b", 1));  // already there: no-op
  EXPECT_EQ(trie.subscriber_count("a/b"), 2u);
  EXPECT_EQ(trie.subscriber_count("a"), 0u);  // a node on the way, not a filter
  EXPECT_EQ(trie.subscriber_count("a/b/c"), 0u);
  EXPECT_TRUE(trie.add("a", 1));    // a filter ending at an inner node is new too
  EXPECT_TRUE(trie.add("a/+", 1));  // so is a wildcard sibling
  EXPECT_TRUE(trie.add("a/#", 1));
  EXPECT_EQ(trie.subscriber_count("a"), 1u);
  EXPECT_EQ(sorted_filters(trie), (std::vector<std::string>{"a", "a/#", "a/+", "a/b"}));
}

TEST(TopicTrieTest, RemoveReportsTheLastSubscriber) {
  TopicTrie trie;
  trie.add("a/b", 1);
  trie.add("a/b", 2);
  EXPECT_FALSE(trie.remove("a/b", 3));  // absent pair
  EXPECT_FALSE(trie.remove("a/c", 1));  // absent filter
  EXPECT_FALSE(trie.remove("a", 1));    // inner node without subscribers
  EXPECT_FALSE(trie.remove("a/b/c", 1));
  EXPECT_EQ(trie.subscriber_count("a/b"), 2u);
  EXPECT_FALSE(trie.remove("a/b", 1));  // 2 is still there
  EXPECT_EQ(trie.subscriber_count("a/b"), 1u);
  EXPECT_FALSE(trie.remove("a/b", 1));  // twice: absent now
  EXPECT_EQ(trie.subscriber_count("a/b"), 1u);
  EXPECT_TRUE(trie.remove("a/b", 2));
  EXPECT_EQ(trie.subscriber_count("a/b"), 0u);
  EXPECT_TRUE(trie.empty());
  EXPECT_FALSE(trie.remove("a/b", 2));
  EXPECT_TRUE(trie.add("a/b", 2));  // first again
}

TEST(TopicTrieTest, PrunesEmptyNodesAndKeepsTheRest) {
  TopicTrie trie;
  trie.add("a/b/c", 1);
  trie.add("a/b", 2);
  trie.add("a/+/c", 3);
  trie.add("x/y/z/w", 4);
  EXPECT_EQ(sorted_filters(trie), (std::vector<std::string>{"a/+/c", "a/b", "a/b/c", "x/y/z/w"}));

  EXPECT_TRUE(trie.remove("a/b/c", 1));
  EXPECT_EQ(sorted_filters(trie), (std::vector<std::string>{"a/+/c", "a/b", "x/y/z/w"}));
  EXPECT_EQ(match_all(trie, "a/b/c"), Ids{3});
  EXPECT_EQ(match_all(trie, "a/b"), Ids{2});

  EXPECT_TRUE(trie.remove("a/b", 2));  // "a/b" has no child left either: pruned
  EXPECT_EQ(sorted_filters(trie), (std::vector<std::string>{"a/+/c", "x/y/z/w"}));
  EXPECT_EQ(match_all(trie, "a/b"), Ids{});

  EXPECT_TRUE(trie.remove("x/y/z/w", 4));
  EXPECT_EQ(sorted_filters(trie), (std::vector<std::string>{"a/+/c"}));
  EXPECT_FALSE(trie.empty());
  EXPECT_TRUE(trie.remove("a/+/c", 3));
  EXPECT_TRUE(trie.empty());
  EXPECT_TRUE(trie.filters().empty());
}

TEST(TopicTrieTest, RemovingAParentKeepsItsChildren) {
  TopicTrie trie;
  trie.add("a", 1);
  trie.add("a/b", 2);
  EXPECT_TRUE(trie.remove("a", 1));
  EXPECT_EQ(sorted_filters(trie), (std::vector<std::string>{"a/b"}));
  EXPECT_EQ(match_all(trie, "a/b"), Ids{2});
  EXPECT_EQ(match_all(trie, "a"), Ids{});
}

TEST(TopicTrieTest, FiltersKeepEmptyLevels) {
  TopicTrie trie;
  const std::vector<std::string> filters = {"/", "//a", "a/", "a//b", "/#", "+/", "$SYS/#"};
  for (const auto& filter : filters) EXPECT_TRUE(trie.add(filter, 1)) << filter;
  std::vector<std::string> expected = filters;
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(sorted_filters(trie), expected);
  for (const auto& filter : filters) EXPECT_EQ(trie.subscriber_count(filter), 1u) << filter;
  EXPECT_EQ(trie.subscriber_count(""), 0u);
  for (const auto& filter : filters) EXPECT_TRUE(trie.remove(filter, 1)) << filter;
  EXPECT_TRUE(trie.empty());
}

TEST(TopicTrieTest, MatchesLikeTheSpec) {
  TopicTrie trie;
  trie.add("sport/tennis/player1/#", 1);
  trie.add("sport/#", 2);
  trie.add("sport/tennis/+", 3);
  trie.add("+/+", 4);
  trie.add("/+", 5);
  trie.add("+", 6);
  trie.add("#", 7);
  trie.add("sport/+", 8);
  EXPECT_EQ(match_all(trie, "sport/tennis/player1"), (Ids{1, 2, 3, 7}));
  EXPECT_EQ(match_all(trie, "sport/tennis/player1/ranking"), (Ids{1, 2, 7}));
  EXPECT_EQ(match_all(trie, "sport"), (Ids{2, 6, 7}));
  EXPECT_EQ(match_all(trie, "sport/"), (Ids{2, 4, 7, 8}));
  EXPECT_EQ(match_all(trie, "/finance"), (Ids{4, 5, 7}));
  EXPECT_EQ(match_all(trie, "finance"), (Ids{6, 7}));
  EXPECT_EQ(match_all(trie, "/"), (Ids{4, 5, 7}));
  EXPECT_EQ(match_all(trie, "a/b/c"), (Ids{7}));
}

TEST(TopicTrieTest, DollarTopicsSkipLeadingWildcards) {
  TopicTrie trie;
  trie.add("#", 1);
  trie.add("+/monitor/Clients", 2);
  trie.add("$SYS/#", 3);
  trie.add("$SYS/monitor/+", 4);
  trie.add("+", 5);
  trie.add("+/#", 6);
  trie.add("a/+", 7);
  EXPECT_EQ(match_all(trie, "$SYS/monitor/Clients"), (Ids{3, 4}));
  EXPECT_EQ(match_all(trie, "$SYS"), (Ids{3}));
  EXPECT_EQ(match_all(trie, "$"), Ids{});
  EXPECT_EQ(match_all(trie, "x/monitor/Clients"), (Ids{1, 2, 6}));
  EXPECT_EQ(match_all(trie, "a/$x"), (Ids{1, 6, 7}));  // '$' past the first level: ordinary
}

TEST(TopicTrieTest, EachSubscriberOnceSorted) {
  TopicTrie trie;
  // Overlapping filters of the same subscribers, added out of order.
  for (SubscriberId id : {9u, 3u, 7u}) {
    trie.add("a/b", id);
    trie.add("a/+", id);
    trie.add("a/#", id);
    trie.add("#", id);
    trie.add("+/b", id);
  }
  trie.add("a/b", 1);
  trie.add("a/+", 5);
  trie.add("x", 2);
  EXPECT_EQ(match_all(trie, "a/b"), (Ids{1, 3, 5, 7, 9}));
  EXPECT_EQ(match_all(trie, "a"), (Ids{3, 7, 9}));
  EXPECT_EQ(match_all(trie, "x"), (Ids{2, 3, 7, 9}));
}

TEST(TopicTrieTest, SingleFilterComesOutSorted) {
  TopicTrie trie;
  for (SubscriberId id : {50u, 10u, 40u, 20u, 30u}) trie.add("t", id);
  EXPECT_EQ(match_all(trie, "t"), (Ids{10, 20, 30, 40, 50}));
  trie.remove("t", 30);
  EXPECT_EQ(match_all(trie, "t"), (Ids{10, 20, 40, 50}));
}

TEST(TopicTrieTest, MatchAppendsAndLeavesTheWholeVectorSortedAndUnique) {
  TopicTrie trie;
  trie.add("t", 5);
  trie.add("t", 2);
  Ids out = {7, 5};
  trie.match("t", out);
  EXPECT_EQ(out, (Ids{2, 5, 7}));
  trie.match("none", out);
  EXPECT_EQ(out, (Ids{2, 5, 7}));
}

TEST(TopicTrieTest, AgreesWithFilterMatchesOnASmallUniverse) {
  const std::vector<std::string> filters = universe_filters();
  const std::vector<std::string> topics = universe_topics();
  TopicTrie trie;
  // Subscriber i % 7 on filter i: several filters per subscriber, so dedup is exercised too.
  for (std::size_t i = 0; i < filters.size(); ++i) trie.add(filters[i], i % 7);
  for (const std::string& topic : topics) {
    std::set<SubscriberId> expected;
    for (std::size_t i = 0; i < filters.size(); ++i) {
      if (filter_matches(filters[i], topic)) expected.insert(i % 7);
    }
    EXPECT_EQ(match_all(trie, topic), Ids(expected.begin(), expected.end())) << topic;
  }
  // Remove every other filter (each filter has one subscriber, so each remove is its last),
  // then check again.
  for (std::size_t i = 0; i < filters.size(); i += 2) EXPECT_TRUE(trie.remove(filters[i], i % 7));
  for (const std::string& topic : topics) {
    std::set<SubscriberId> expected;
    for (std::size_t i = 1; i < filters.size(); i += 2) {
      if (filter_matches(filters[i], topic)) expected.insert(i % 7);
    }
    EXPECT_EQ(match_all(trie, topic), Ids(expected.begin(), expected.end())) << topic;
  }
  std::vector<std::string> remaining;
  for (std::size_t i = 1; i < filters.size(); i += 2) remaining.push_back(filters[i]);
  std::sort(remaining.begin(), remaining.end());
  EXPECT_EQ(sorted_filters(trie), remaining);
}

TEST(TopicTrieTest, ManySubscribers) {
  TopicTrie trie;
  Ids expected;
  for (SubscriberId id = 0; id < 5000; ++id) {
    const std::string filter = "room/" + std::to_string(id % 50) + "/+";
    EXPECT_EQ(trie.add(filter, id), id < 50);
    if (id % 50 == 7) expected.push_back(id);
  }
  trie.add("room/#", 100000);
  expected.push_back(100000);
  EXPECT_EQ(match_all(trie, "room/7/msg"), expected);
  EXPECT_EQ(trie.subscriber_count("room/7/+"), 100u);
  EXPECT_EQ(trie.filters().size(), 51u);
}

std::string plus_levels(int count) {
  std::string out = "+";
  for (int i = 1; i < count; ++i) out += "/+";
  return out;
}

TEST(TopicTrieTest, VeryDeepFiltersDoNotRecurse) {
  // 20000 levels: recursion per level in match, filters() or the destructor would risk
  // overflowing the stack.
  const std::string deep(19999, '/');
  const std::string deep_plus = plus_levels(20000);
  {
    TopicTrie trie;
    EXPECT_TRUE(trie.add(deep, 1));
    EXPECT_TRUE(trie.add(deep_plus, 2));
    EXPECT_TRUE(trie.add(deep + "/#", 3));
    EXPECT_EQ(match_all(trie, deep), (Ids{1, 2, 3}));
    EXPECT_EQ(match_all(trie, deep + "/"), (Ids{3}));
    EXPECT_EQ(match_all(trie, deep.substr(1)), Ids{});
    EXPECT_EQ(trie.filters().size(), 3u);
    EXPECT_TRUE(trie.remove(deep, 1));
    EXPECT_EQ(match_all(trie, deep), (Ids{2, 3}));
    EXPECT_EQ(trie.subscriber_count(deep_plus), 1u);
  }  // destroyed with deep chains still in it
}

TEST(TopicTrieTest, WideSearchesKeepEveryPendingBranch) {
  // "+/.../+/" with k '+' levels, for k = 1..200: below each '+' node both "" and "+" go on,
  // so the search keeps ~200 pending branches at once.
  TopicTrie trie;
  for (int k = 1; k <= 200; ++k) trie.add(plus_levels(k) + "/", static_cast<SubscriberId>(k));
  trie.add(plus_levels(201), 999);
  // m slashes: m + 1 empty levels, matched by k = m only (and by 201 '+' when m = 200).
  EXPECT_EQ(match_all(trie, std::string(1, '/')), Ids{1});
  EXPECT_EQ(match_all(trie, std::string(150, '/')), Ids{150});
  EXPECT_EQ(match_all(trie, std::string(200, '/')), (Ids{200, 999}));
  EXPECT_EQ(match_all(trie, std::string(201, '/')), Ids{});
  EXPECT_EQ(match_all(trie, "x"), Ids{});
  EXPECT_EQ(trie.filters().size(), 201u);
}

}  // namespace
}  // namespace wsbridge::mqtt
