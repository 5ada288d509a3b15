// MQTT topic names and filters (plugins/mqtt/topic.cpp): validity with reasons, UTF-8,
// filter_matches against the spec's examples, filter_covers against matching.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "topic.hpp"
#include "topic_universe.hpp"

namespace wsbridge::mqtt {
namespace {

using namespace std::string_literals;
using namespace topic_universe;

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

// What MQTT lets a receiver close the connection for, and mosquitto 2.0 does (MQTT 5 section
// 1.5.4): control characters and noncharacters, on top of what UTF-8 itself refuses.
TEST(MqttStringTest, RefusesControlCharactersAndNoncharacters) {
  for (const std::string& good :
       {""s, "sensors/a b"s, "\xc2\xa0"s /* U+00A0 */, "\xef\xb7\x8f"s /* U+FDCF */,
        "\xef\xb7\xb0"s /* U+FDF0 */, "\xef\xbf\xbd"s /* U+FFFD */, "\xf0\x9f\x98\x80"s}) {
    EXPECT_TRUE(is_valid_mqtt_string(good)) << testing::PrintToString(good);
  }
  for (const std::string& bad : {
           "a\0b"s,              // U+0000
           "a\x01"s,             // U+0001
           "tab\there"s,         // U+0009
           "\x1f"s,              // U+001F
           "\x7f"s,              // U+007F
           "\xc2\x80"s,          // U+0080, C1
           "bob\xc2\x85"s,       // U+0085 (NEL), C1
           "\xc2\x9f"s,          // U+009F, C1
           "\xef\xb7\x90"s,      // U+FDD0, noncharacter
           "\xef\xb7\xaf"s,      // U+FDEF
           "\xef\xbf\xbe"s,      // U+FFFE
           "\xef\xbf\xbf"s,      // U+FFFF
           "\xf0\x9f\xbf\xbe"s,  // U+1FFFE
           "\xf4\x8f\xbf\xbf"s,  // U+10FFFF
           "\xc0\xaf"s,          // (not UTF-8 at all)
       }) {
    EXPECT_FALSE(is_valid_mqtt_string(bad)) << testing::PrintToString(bad);
  }
  // Topics and filters (also the JSON routes', whose broker connection every client shares).
  EXPECT_NE(topic_name_problem("sensors/\x01"), std::nullopt);
  EXPECT_NE(topic_name_problem("sensors/\xc2\x85"), std::nullopt);
  EXPECT_NE(topic_filter_problem("sensors/\xef\xbf\xbf/#"), std::nullopt);
  EXPECT_EQ(is_valid_utf8("sensors/\x01\xc2\x85\xef\xbf\xbf"), true) << "payloads: unchanged";
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

}  // namespace
}  // namespace wsbridge::mqtt
