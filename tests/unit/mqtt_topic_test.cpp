// MQTT adapter building blocks without I/O: topic names and filters, the subscription trie, ACL
// patterns and JSON string escaping (base64: tests/unit/base64_test.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "acl.hpp"
#include "codec.hpp"
#include "topic.hpp"
#include "topic_trie.hpp"

namespace wsbridge::mqtt {
namespace {

using nlohmann::json;
using namespace std::string_literals;
using Ids = std::vector<SubscriberId>;

// ---- topic names ------------------------------------------------------------------------------

TEST(TopicNameTest, AcceptsOrdinaryNames) {
  for (const std::string& topic :
       {"a"s, "sport/tennis/player1"s, "/"s, "//"s, "a//b"s, "a/"s, "/finance"s,
        "$SYS/broker/load"s, "a b/c d"s, "ü/日本/😀"s, "x$"s, "{user}"s}) {
    EXPECT_EQ(topic_name_problem(topic), std::nullopt) << topic;
  }
}

TEST(TopicNameTest, RejectsWithReasons) {
  EXPECT_EQ(topic_name_problem(""), "must not be empty");
  for (const std::string& topic : {"#"s, "+"s, "a/#"s, "a/+/b"s, "sport+"s, "a#b"s}) {
    EXPECT_EQ(topic_name_problem(topic), "must not contain wildcards ('+' or '#')") << topic;
  }
  EXPECT_EQ(topic_name_problem("a\0b"s), "must not contain NUL");
  EXPECT_EQ(topic_name_problem("\0"s), "must not contain NUL");
  EXPECT_EQ(topic_name_problem("a/\xff"), "must be valid UTF-8");
}

TEST(TopicNameTest, LengthLimitIs65535Bytes) {
  EXPECT_EQ(kMaxTopicBytes, 65535u);
  EXPECT_EQ(topic_name_problem(std::string(65535, 'a')), std::nullopt);
  EXPECT_EQ(topic_name_problem(std::string(65536, 'a')), "must be at most 65535 bytes");
  EXPECT_EQ(topic_filter_problem(std::string(65535, '/')), std::nullopt);
  EXPECT_EQ(topic_filter_problem(std::string(65534, 'a') + "/#"), "must be at most 65535 bytes");
}

TEST(Utf8Test, AcceptsWellFormedSequences) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ASCII \x01\x7f"));
  EXPECT_TRUE(is_valid_utf8("\xc2\x80"));          // U+0080, smallest 2-byte
  EXPECT_TRUE(is_valid_utf8("\xdf\xbf"));          // U+07FF
  EXPECT_TRUE(is_valid_utf8("\xe0\xa0\x80"));      // U+0800, smallest 3-byte
  EXPECT_TRUE(is_valid_utf8("\xed\x9f\xbf"));      // U+D7FF, just below the surrogates
  EXPECT_TRUE(is_valid_utf8("\xee\x80\x80"));      // U+E000, just above them
  EXPECT_TRUE(is_valid_utf8("\xef\xbf\xbf"));      // U+FFFF
  EXPECT_TRUE(is_valid_utf8("\xf0\x90\x80\x80"));  // U+10000, smallest 4-byte
  EXPECT_TRUE(is_valid_utf8("\xf0\x9f\x98\x80"));  // U+1F600
  EXPECT_TRUE(is_valid_utf8("\xf4\x8f\xbf\xbf"));  // U+10FFFF, the last code point
  EXPECT_TRUE(is_valid_utf8("a\0b"s));             // NUL is UTF-8; topics reject it separately
}

TEST(Utf8Test, RejectsMalformedSequences) {
  for (const std::string& bad : {
           "\x80"s,              // lone continuation byte
           "a\xbf"s,             // continuation after ASCII
           "\xc2"s,              // truncated 2-byte
           "\xc2\x41"s,          // lead byte followed by ASCII
           "\xc0\xaf"s,          // overlong '/'
           "\xc1\xbf"s,          // overlong
           "\xe0\x80\xaf"s,      // overlong 3-byte '/'
           "\xe0\x9f\xbf"s,      // overlong U+07FF
           "\xe6\x97"s,          // truncated 3-byte
           "\xed\xa0\x80"s,      // U+D800, a surrogate
           "\xed\xbf\xbf"s,      // U+DFFF, a surrogate
           "\xf0\x80\x80\xaf"s,  // overlong 4-byte
           "\xf0\x8f\xbf\xbf"s,  // overlong U+FFFF
           "\xf0\x9f\x98"s,      // truncated 4-byte
           "\xf4\x90\x80\x80"s,  // U+110000, beyond Unicode
           "\xf5\x80\x80\x80"s,  // lead byte beyond Unicode
           "\xf8\x88\x80\x80\x80"s,
           "\xfe"s,
           "\xff"s,
           "ok\xe2\x82"s,  // truncated at the very end
       }) {
    EXPECT_FALSE(is_valid_utf8(bad)) << testing::PrintToString(bad);
  }
}

// ---- topic filters ----------------------------------------------------------------------------

TEST(TopicFilterTest, AcceptsWildcardsAsWholeLevels) {
  for (const std::string& filter :
       {"#"s, "+"s, "+/+"s, "/+"s, "+/"s, "a/#"s, "sport/tennis/player1/#"s, "sport/+/player1"s,
        "+/tennis/#"s, "a//#"s, "/#"s, "$SYS/#"s, "$SYS/+/x"s, "a/b"s, "+/+/+/#"s, "/"s}) {
    EXPECT_EQ(topic_filter_problem(filter), std::nullopt) << filter;
  }
}

TEST(TopicFilterTest, RejectsMisplacedWildcards) {
  const std::string hash = "may use '#' only as the whole last level";
  const std::string plus = "may use '+' only as a whole level";
  EXPECT_EQ(topic_filter_problem("sport/tennis#"), hash);
  EXPECT_EQ(topic_filter_problem("sport/tennis/#/ranking"), hash);
  EXPECT_EQ(topic_filter_problem("##"), hash);
  EXPECT_EQ(topic_filter_problem("#/"), hash);
  EXPECT_EQ(topic_filter_problem("a/#/"), hash);
  EXPECT_EQ(topic_filter_problem("#/#"), hash);
  EXPECT_EQ(topic_filter_problem("#+"), hash);
  EXPECT_EQ(topic_filter_problem("sport+"), plus);
  EXPECT_EQ(topic_filter_problem("a/b+/c"), plus);
  EXPECT_EQ(topic_filter_problem("++"), plus);
  EXPECT_EQ(topic_filter_problem("+a"), plus);
}

TEST(TopicFilterTest, RejectsLikeNames) {
  EXPECT_EQ(topic_filter_problem(""), "must not be empty");
  EXPECT_EQ(topic_filter_problem("a/\0/#"s), "must not contain NUL");
  EXPECT_EQ(topic_filter_problem("\xc0\xaf/#"), "must be valid UTF-8");
  EXPECT_EQ(topic_filter_problem(std::string(65536, '+')), "must be at most 65535 bytes");
}

// ---- filter_matches ---------------------------------------------------------------------------

TEST(FilterMatchesTest, MultiLevelWildcardSpecExamples) {
  // MQTT 3.1.1 section 4.7.1.2.
  EXPECT_TRUE(filter_matches("sport/tennis/player1/#", "sport/tennis/player1"));
  EXPECT_TRUE(filter_matches("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
  EXPECT_TRUE(filter_matches("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"));
  EXPECT_FALSE(filter_matches("sport/tennis/player1/#", "sport/tennis/player2"));
  EXPECT_FALSE(filter_matches("sport/tennis/player1/#", "sport/tennis"));
  EXPECT_TRUE(filter_matches("sport/#", "sport"));
  EXPECT_TRUE(filter_matches("sport/#", "sport/"));
  EXPECT_FALSE(filter_matches("sport/#", "sports"));
  EXPECT_TRUE(filter_matches("#", "sport"));
  EXPECT_TRUE(filter_matches("#", "/"));
  EXPECT_TRUE(filter_matches("#", "a/b/c/d/e"));
}

TEST(FilterMatchesTest, SingleLevelWildcardSpecExamples) {
  // MQTT 3.1.1 section 4.7.1.3.
  EXPECT_TRUE(filter_matches("sport/tennis/+", "sport/tennis/player1"));
  EXPECT_TRUE(filter_matches("sport/tennis/+", "sport/tennis/player2"));
  EXPECT_FALSE(filter_matches("sport/tennis/+", "sport/tennis/player1/ranking"));
  EXPECT_FALSE(filter_matches("sport/+", "sport"));
  EXPECT_TRUE(filter_matches("sport/+", "sport/"));
  EXPECT_TRUE(filter_matches("+/tennis/#", "sport/tennis/player1"));
  EXPECT_TRUE(filter_matches("+/tennis/#", "sport/tennis"));
  EXPECT_TRUE(filter_matches("sport/+/player1", "sport/tennis/player1"));
  EXPECT_FALSE(filter_matches("sport/+/player1", "sport/tennis/player2"));
  // "/finance" has two levels: "" and "finance".
  EXPECT_TRUE(filter_matches("+/+", "/finance"));
  EXPECT_TRUE(filter_matches("/+", "/finance"));
  EXPECT_FALSE(filter_matches("+", "/finance"));
  EXPECT_TRUE(filter_matches("+", "finance"));
  EXPECT_FALSE(filter_matches("+", "/"));
  EXPECT_TRUE(filter_matches("+/+", "/"));
}

TEST(FilterMatchesTest, DollarTopicsNeedALiteralFirstLevel) {
  // MQTT 3.1.1 section 4.7.2.
  EXPECT_FALSE(filter_matches("#", "$SYS/monitor/Clients"));
  EXPECT_FALSE(filter_matches("+/monitor/Clients", "$SYS/monitor/Clients"));
  EXPECT_TRUE(filter_matches("$SYS/#", "$SYS/monitor/Clients"));
  EXPECT_TRUE(filter_matches("$SYS/#", "$SYS"));
  EXPECT_TRUE(filter_matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
  EXPECT_TRUE(filter_matches("$SYS/monitor/Clients", "$SYS/monitor/Clients"));
  EXPECT_FALSE(filter_matches("+", "$"));
  EXPECT_FALSE(filter_matches("+/#", "$SYS/x"));
  // Only the first level counts.
  EXPECT_TRUE(filter_matches("a/+", "a/$b"));
  EXPECT_TRUE(filter_matches("a/#", "a/$b/c"));
  EXPECT_TRUE(filter_matches("+", "x$"));
}

TEST(FilterMatchesTest, LiteralLevelsCompareExactly) {
  EXPECT_TRUE(filter_matches("a/b", "a/b"));
  EXPECT_FALSE(filter_matches("a/b", "a/b/c"));
  EXPECT_FALSE(filter_matches("a/b/c", "a/b"));
  EXPECT_FALSE(filter_matches("ACCOUNTS", "Accounts"));  // case-sensitive
  EXPECT_FALSE(filter_matches("a", "a/"));               // a trailing '/' adds an empty level
  EXPECT_FALSE(filter_matches("a/", "a"));
  EXPECT_TRUE(filter_matches("a/", "a/"));
  EXPECT_FALSE(filter_matches("a b", "ab"));
  EXPECT_TRUE(filter_matches("a/+/b", "a//b"));
  EXPECT_FALSE(filter_matches("a/b", "a//b"));
  EXPECT_TRUE(filter_matches("a//b", "a//b"));
  EXPECT_TRUE(filter_matches("//", "//"));
  EXPECT_FALSE(filter_matches("/", "//"));
  EXPECT_TRUE(filter_matches("ü/+", "ü/日本"));
}

// ---- filter_covers ----------------------------------------------------------------------------

TEST(FilterCoversTest, HashCoversEverythingButDollarTopics) {
  EXPECT_TRUE(filter_covers("#", "a/+/c"));
  EXPECT_TRUE(filter_covers("#", "#"));
  EXPECT_TRUE(filter_covers("#", "+"));
  EXPECT_TRUE(filter_covers("#", "a/#"));
  EXPECT_TRUE(filter_covers("#", "/"));
  EXPECT_TRUE(filter_covers("#", "a/$SYS"));
  EXPECT_FALSE(filter_covers("#", "$SYS/#"));
  EXPECT_FALSE(filter_covers("#", "$SYS/x"));
  EXPECT_FALSE(filter_covers("#", "$SYS"));
}

TEST(FilterCoversTest, SingleLevelWildcard) {
  EXPECT_TRUE(filter_covers("a/+", "a/b"));
  EXPECT_TRUE(filter_covers("a/+", "a/+"));
  EXPECT_TRUE(filter_covers("a/+", "a/"));
  EXPECT_FALSE(filter_covers("a/+", "a/#"));
  EXPECT_FALSE(filter_covers("a/+", "a"));
  EXPECT_FALSE(filter_covers("a/+", "a/b/c"));
  EXPECT_FALSE(filter_covers("a/+", "+/b"));
  EXPECT_FALSE(filter_covers("+", "/"));
  EXPECT_FALSE(filter_covers("+", "+/+"));
  EXPECT_TRUE(filter_covers("+", "+"));
  EXPECT_TRUE(filter_covers("/+", "/x"));
  EXPECT_TRUE(filter_covers("/+", "/+"));
  EXPECT_FALSE(filter_covers("/+", "+/+"));
  EXPECT_TRUE(filter_covers("+/+", "/+"));
}

TEST(FilterCoversTest, MultiLevelWildcardCoversItsParent) {
  EXPECT_TRUE(filter_covers("a/#", "a"));
  EXPECT_TRUE(filter_covers("a/#", "a/b"));
  EXPECT_TRUE(filter_covers("a/#", "a/+/c"));
  EXPECT_TRUE(filter_covers("a/#", "a/#"));
  EXPECT_TRUE(filter_covers("a/#", "a/b/#"));
  EXPECT_FALSE(filter_covers("a/#", "b"));
  EXPECT_FALSE(filter_covers("a/#", "#"));
  EXPECT_FALSE(filter_covers("a/#", "+"));
  EXPECT_FALSE(filter_covers("a/b/#", "a/#"));
  EXPECT_FALSE(filter_covers("a/+/#", "a/#"));  // "a/#" matches "a", which "a/+/#" does not
  EXPECT_TRUE(filter_covers("a/+/#", "a/b"));
  EXPECT_TRUE(filter_covers("a/+/#", "a/+"));
  EXPECT_TRUE(filter_covers("a/+/#", "a/+/#"));
  EXPECT_FALSE(filter_covers("a", "a/#"));
}

TEST(FilterCoversTest, OneLevelOrMoreCoversHashAtTheTop) {
  // No topic is empty, so "+/#" (one or more levels) and "#" match the same topics.
  EXPECT_TRUE(filter_covers("+/#", "#"));
  EXPECT_TRUE(filter_covers("#", "+/#"));
  EXPECT_FALSE(filter_covers("+/+/#", "#"));
  // Likewise "/#" does not match "" (no topic), so it needs a second level as "/+/#" does.
  EXPECT_TRUE(filter_covers("/+/#", "/#"));
  EXPECT_TRUE(filter_covers("+/+/#", "/#"));
  EXPECT_FALSE(filter_covers("a/+/#", "a/#"));
  EXPECT_FALSE(filter_covers("//+/#", "//#"));  // "//#" matches "/"
  EXPECT_TRUE(filter_matches("//#", "/"));
  EXPECT_FALSE(filter_covers("+", "#"));
  EXPECT_FALSE(filter_covers("a/+/#", "a/#"));
}

TEST(FilterCoversTest, DollarTopics) {
  EXPECT_FALSE(filter_covers("+/x", "$SYS/x"));
  EXPECT_TRUE(filter_covers("+/x", "a/x"));
  EXPECT_TRUE(filter_covers("+/x", "+/x"));
  EXPECT_FALSE(filter_covers("+/x", "+/y"));
  EXPECT_TRUE(filter_covers("$SYS/#", "$SYS/a/+"));
  EXPECT_TRUE(filter_covers("$SYS/#", "$SYS"));
  EXPECT_TRUE(filter_covers("$SYS/#", "$SYS/#"));
  EXPECT_FALSE(filter_covers("$SYS/#", "+/a"));  // "+/a" matches "b/a"
  EXPECT_FALSE(filter_covers("$SYS/#", "#"));
  EXPECT_FALSE(filter_covers("$SYS/#", "$other/x"));
  EXPECT_TRUE(filter_covers("a/+", "a/$x"));  // only the first level is special
}

TEST(FilterCoversTest, LiteralFilters) {
  EXPECT_TRUE(filter_covers("a/b", "a/b"));
  EXPECT_FALSE(filter_covers("a/b", "a/c"));
  EXPECT_FALSE(filter_covers("a/b", "a/+"));
  EXPECT_FALSE(filter_covers("a/b", "a/b/c"));
  EXPECT_FALSE(filter_covers("a/b", "a"));
  EXPECT_FALSE(filter_covers("a", "a/"));
}

// Small universe for exhaustive cross-checks: every valid filter of up to three levels from
// `filter_levels` (plus an optional final '#'), every topic of up to four levels from
// `topic_levels`. "z" appears in no filter, so it stands for "any other level"; with one level
// more than the longest filter prefix, a topic witnessing "not covered" exists in the universe
// whenever one exists at all.
std::vector<std::string> all_paths(const std::vector<std::string>& levels, std::size_t max_depth) {
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

std::vector<std::string> universe_filters() {
  std::vector<std::string> out = all_paths({"a", "$s", "", "+"}, 3);
  const std::size_t plain = out.size();
  out.push_back("#");
  out.push_back("/#");  // the one-level prefix "" is no filter by itself, but "/#" is
  for (std::size_t i = 0; i < plain; ++i) out.push_back(out[i] + "/#");
  return out;
}

std::vector<std::string> universe_topics() {
  return all_paths({"a", "$s", "", "z"}, 4);
}

TEST(FilterCoversTest, AgreesWithMatchingOnEveryTopicOfASmallUniverse) {
  const std::vector<std::string> filters = universe_filters();
  const std::vector<std::string> topics = universe_topics();
  for (const auto& filter : filters) ASSERT_EQ(topic_filter_problem(filter), std::nullopt);
  for (const auto& topic : topics) ASSERT_EQ(topic_name_problem(topic), std::nullopt);
  std::vector<std::vector<bool>> matches(filters.size(), std::vector<bool>(topics.size()));
  for (std::size_t f = 0; f < filters.size(); ++f) {
    for (std::size_t t = 0; t < topics.size(); ++t) {
      matches[f][t] = filter_matches(filters[f], topics[t]);
    }
  }
  int mismatches = 0;
  int covered_pairs = 0;
  for (std::size_t outer = 0; outer < filters.size(); ++outer) {
    for (std::size_t inner = 0; inner < filters.size(); ++inner) {
      bool expected = true;
      for (std::size_t t = 0; t < topics.size() && expected; ++t) {
        if (matches[inner][t] && !matches[outer][t]) expected = false;
      }
      const bool actual = filter_covers(filters[outer], filters[inner]);
      covered_pairs += actual ? 1 : 0;
      if (actual != expected && ++mismatches <= 20) {
        ADD_FAILURE() << "filter_covers(\"" << filters[outer] << "\", \"" << filters[inner]
                      << "\") is " << actual << ", matching says " << expected;
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GT(covered_pairs, static_cast<int>(filters.size()));  // not trivially "only itself"
}

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

// ---- ACL patterns -----------------------------------------------------------------------------

TEST(AclPatternTest, AcceptsPlaceholders) {
  for (const std::string& pattern :
       {"#"s, "public/+"s, "{user}/#"s, "users/{user}/+"s, "org/{claim.org_id}/#"s,
        "{claim.a-b.c_D9}"s, "pre-{user}-post/x"s, "$SYS/{user}"s, "{user}{claim.x}"s,
        "{claim.tenant}/{user}/#"s}) {
    EXPECT_EQ(acl_pattern_problem(pattern), std::nullopt) << pattern;
  }
}

TEST(AclPatternTest, RejectsUnknownOrUnbalancedPlaceholders) {
  for (const std::string& pattern :
       {"{unknown}/#"s, "{users}"s, "{User}"s, "{claim.}"s, "{claim}"s, "{claim.a b}"s,
        "{claim.a/b}"s, "{claim.a+}"s, "{}"s, "{{user}}"s, "{user"s, "user}"s, "a/{user/b}"s,
        "{claim.x"s, "}{user}"s, "{user}}"s, "{ user}"s}) {
    EXPECT_NE(acl_pattern_problem(pattern), std::nullopt) << pattern;
  }
  EXPECT_EQ(acl_pattern_problem("{nope}"),
            "has an unknown placeholder {nope} (use {user} or {claim.NAME}; NAME: letters, "
            "digits, '_', '-', '.')");
  EXPECT_EQ(acl_pattern_problem("a/{user"), "has a '{' without a matching '}'");
  EXPECT_EQ(acl_pattern_problem("a/user}"), "has a '}' without a matching '{'");
}

TEST(AclPatternTest, RejectsPatternsThatAreNoFilter) {
  EXPECT_EQ(acl_pattern_problem(""), "is not a valid topic filter: it must not be empty");
  EXPECT_EQ(acl_pattern_problem("a/#/{user}"),
            "is not a valid topic filter: it may use '#' only as the whole last level");
  EXPECT_EQ(acl_pattern_problem("+{user}/x"),
            "is not a valid topic filter: it may use '+' only as a whole level");
  EXPECT_EQ(acl_pattern_problem("{user}#"),
            "is not a valid topic filter: it may use '#' only as the whole last level");
  EXPECT_NE(acl_pattern_problem("a\0/{user}"s), std::nullopt);
}

TEST(ExpandAclTest, FillsUserAndClaims) {
  const json claims = {{"org", "acme"}, {"room", 42}, {"neg", -7}, {"a.b", "dotted"}};
  EXPECT_EQ(expand_acl({"users/{user}/#", "org/{claim.org}/rooms/{claim.room}", "public/+",
                        "n/{claim.neg}", "{claim.a.b}/x", "id-{user}-{claim.org}"},
                       "alice", claims),
            (std::vector<std::string>{"users/alice/#", "org/acme/rooms/42", "public/+", "n/-7",
                                      "dotted/x", "id-alice-acme"}));
}

TEST(ExpandAclTest, LargeUnsignedClaimsKeepTheirValue) {
  const json claims = {{"big", std::uint64_t{18446744073709551615u}},
                       {"min", std::int64_t{-9223372036854775807 - 1}}};
  EXPECT_EQ(expand_acl({"b/{claim.big}", "m/{claim.min}"}, "u", claims),
            (std::vector<std::string>{"b/18446744073709551615", "m/-9223372036854775808"}));
}

TEST(ExpandAclTest, AnonymousUserDropsUserPatterns) {
  EXPECT_EQ(expand_acl({"users/{user}/#", "public/#"}, "", json::object()),
            (std::vector<std::string>{"public/#"}));
}

TEST(ExpandAclTest, ValuesCannotInjectWildcardsOrLevels) {
  const std::vector<std::string> patterns = {"users/{user}/#", "public/#"};
  for (const std::string& user :
       {"+"s, "#"s, "a+"s, "a#b"s, "a/b"s, "/"s, ".."s + "/x"s, "a\0b"s, "\0"s, "\xff"s}) {
    EXPECT_EQ(expand_acl(patterns, user, json::object()), (std::vector<std::string>{"public/#"}))
        << testing::PrintToString(user);
  }
  // Claims too, and a value that makes the filter too long.
  const json claims = {{"plus", "+"},    {"hash", "#"}, {"slash", "x/y"},
                       {"nul", "a\0b"s}, {"empty", ""}, {"long", std::string(70000, 'x')},
                       {"ok", "fine"}};
  EXPECT_EQ(expand_acl({"c/{claim.plus}", "c/{claim.hash}", "c/{claim.slash}", "c/{claim.nul}",
                        "c/{claim.empty}", "c/{claim.long}", "c/{claim.ok}"},
                       "u", claims),
            (std::vector<std::string>{"c/fine"}));
}

TEST(ExpandAclTest, OnlyStringAndIntegerClaimsCount) {
  const json claims = {{"t", true},
                       {"f", 1.5},
                       {"whole_float", 2.0},
                       {"null", nullptr},
                       {"arr", json::array({"a"})},
                       {"obj", {{"k", "v"}}},
                       {"s", "v"}};
  EXPECT_EQ(
      expand_acl({"{claim.t}", "{claim.f}", "{claim.whole_float}", "{claim.null}", "{claim.arr}",
                  "{claim.obj}", "{claim.missing}", "{claim.obj.k}", "{claim.s}"},
                 "u", claims),
      (std::vector<std::string>{"v"}));
  // Claims that are not an object at all: only the claim patterns go.
  for (const json& odd : {json(), json::array({"x"}), json("x"), json(3)}) {
    EXPECT_EQ(expand_acl({"{claim.x}/#", "{user}/#"}, "u", odd), (std::vector<std::string>{"u/#"}))
        << odd.dump();
  }
}

TEST(ExpandAclTest, ValuesCannotReachDollarTopics) {
  // A user named "$SYS" must not turn "{user}/#" into "$SYS/#"; further in, '$' is plain.
  EXPECT_EQ(expand_acl({"{user}/#", "users/{user}/#"}, "$SYS", json::object()),
            (std::vector<std::string>{"users/$SYS/#"}));
  EXPECT_EQ(expand_acl({"{claim.t}/x"}, "u", json{{"t", "$share"}}), std::vector<std::string>{});
}

TEST(ExpandAclTest, InvalidPatternsAreDropped) {
  EXPECT_EQ(expand_acl({"{nope}/x", "a/#/b", "", "ok/{user}"}, "u", json::object()),
            (std::vector<std::string>{"ok/u"}));
}

TEST(AclCheckTest, SubscribeNeedsACoveringPattern) {
  const auto acl =
      expand_acl({"users/{user}/#", "public/+", "$SYS/broker/+"}, "alice", json::object());
  EXPECT_TRUE(subscribe_allowed(acl, "users/alice"));
  EXPECT_TRUE(subscribe_allowed(acl, "users/alice/inbox"));
  EXPECT_TRUE(subscribe_allowed(acl, "users/alice/#"));
  EXPECT_TRUE(subscribe_allowed(acl, "users/alice/+/x"));
  EXPECT_FALSE(subscribe_allowed(acl, "users/bob/inbox"));
  EXPECT_FALSE(subscribe_allowed(acl, "users/+/inbox"));
  EXPECT_FALSE(subscribe_allowed(acl, "users/#"));
  EXPECT_FALSE(subscribe_allowed(acl, "#"));
  EXPECT_FALSE(subscribe_allowed(acl, "+/alice/inbox"));
  EXPECT_TRUE(subscribe_allowed(acl, "public/news"));
  EXPECT_TRUE(subscribe_allowed(acl, "public/+"));
  EXPECT_FALSE(subscribe_allowed(acl, "public/#"));
  EXPECT_FALSE(subscribe_allowed(acl, "public"));
  EXPECT_FALSE(subscribe_allowed(acl, "public/news/x"));
  EXPECT_TRUE(subscribe_allowed(acl, "$SYS/broker/load"));
  EXPECT_FALSE(subscribe_allowed(acl, "$SYS/#"));
  EXPECT_FALSE(subscribe_allowed({}, "a"));
}

TEST(AclCheckTest, LeadingWildcardPatternsDoNotGrantDollarTopics) {
  const std::vector<std::string> acl = {"#", "+/x"};
  EXPECT_TRUE(subscribe_allowed(acl, "anything/at/all"));
  EXPECT_FALSE(subscribe_allowed(acl, "$SYS/#"));
  EXPECT_FALSE(subscribe_allowed(acl, "$SYS/x"));
  EXPECT_FALSE(publish_allowed(acl, "$SYS/x"));
  EXPECT_TRUE(publish_allowed(acl, "a/$SYS"));
}

TEST(AclCheckTest, PublishNeedsAMatchingPattern) {
  const auto acl = expand_acl({"users/{user}/#", "public/+"}, "alice", json::object());
  EXPECT_TRUE(publish_allowed(acl, "users/alice"));
  EXPECT_TRUE(publish_allowed(acl, "users/alice/x/y"));
  EXPECT_FALSE(publish_allowed(acl, "users/bob/x"));
  EXPECT_FALSE(publish_allowed(acl, "users"));
  EXPECT_TRUE(publish_allowed(acl, "public/x"));
  EXPECT_TRUE(publish_allowed(acl, "public/"));
  EXPECT_FALSE(publish_allowed(acl, "public/x/y"));
  EXPECT_FALSE(publish_allowed({}, "public/x"));
}

TEST(AclCheckTest, InjectedUserGetsNothing) {
  const auto acl = expand_acl({"users/{user}/#"}, "+", json::object());
  EXPECT_TRUE(acl.empty());
  EXPECT_FALSE(subscribe_allowed(acl, "users/bob/x"));
  EXPECT_FALSE(publish_allowed(acl, "users/+"));
}

// ---- JSON strings -----------------------------------------------------------------------------

std::string json_string(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

TEST(JsonStringTest, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(json_string(""), R"("")");
  EXPECT_EQ(json_string("plain"), R"("plain")");
  EXPECT_EQ(json_string("say \"hi\""), R"("say \"hi\"")");
  EXPECT_EQ(json_string("C:\\dir\\"), R"("C:\\dir\\")");
  EXPECT_EQ(json_string("\n\r\t\b\f"), R"("\n\r\t\b\f")");
  EXPECT_EQ(json_string("\0"s), R"("\u0000")");
  EXPECT_EQ(json_string("a\x01z"), R"("a\u0001z")");
  EXPECT_EQ(json_string("\x0b\x1b\x1f"), R"("\u000b\u001b\u001f")");
  EXPECT_EQ(json_string("\x7f"), "\"\x7f\"");  // DEL needs no escape in JSON
  EXPECT_EQ(json_string("a/b </script>"), R"("a/b </script>")");
  EXPECT_EQ(json_string("ü 日本 😀"), "\"ü 日本 😀\"");  // UTF-8 copied as it is
  EXPECT_EQ(json_string("\"\""), R"("\"\"")");
}

TEST(JsonStringTest, Appends) {
  std::string out = R"({"topic":)";
  append_json_string(out, "a/\"b\"");
  out += ",\"n\":1}";
  EXPECT_EQ(out, R"({"topic":"a/\"b\"","n":1})");
  const json parsed = json::parse(out);
  EXPECT_EQ(parsed["topic"], "a/\"b\"");
}

TEST(JsonStringTest, RoundTripsThroughAJsonParser) {
  std::string text;
  for (int c = 0; c < 0x80; ++c) text.push_back(static_cast<char>(c));
  text += "\\\"\\\\ ü 日本 😀 \xf4\x8f\xbf\xbf";
  const std::string literal = json_string(text);
  EXPECT_EQ(json::parse(literal).get<std::string>(), text);
  // Every byte below 0x20 went out escaped.
  EXPECT_EQ(std::count_if(literal.begin(), literal.end(),
                          [](char c) { return static_cast<unsigned char>(c) < 0x20; }),
            0);
}

}  // namespace
}  // namespace wsbridge::mqtt
