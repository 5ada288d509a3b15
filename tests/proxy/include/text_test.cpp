// The one ASCII case folding and trimming (proxy/include/wsbridge/text.hpp).
#include "wsbridge/text.hpp"

#include <gtest/gtest.h>

#include <string>

namespace wsbridge::text {
namespace {

TEST(TextTest, CaseFoldingIsAsciiOnly) {
  EXPECT_EQ(lower("Content-TYPE"), "content-type");
  EXPECT_EQ(upper("patch"), "PATCH");
  EXPECT_EQ(upper("gEt-1_x"), "GET-1_X");
  // Bytes outside ASCII are left alone, whatever the locale would do with them.
  EXPECT_EQ(upper("caf\xc3\xa9"), "CAF\xc3\xa9");
  EXPECT_EQ(lower("\xc3\x89T\xc3\x89"), "\xc3\x89t\xc3\x89");
  EXPECT_TRUE(iequals("WebSocket", "websocket"));
  EXPECT_FALSE(iequals("websocket", "websockets"));
}

TEST(TextTest, TrimTakesSpacesAndTabsOnly) {
  EXPECT_EQ(trim(" \t value \t"), "value");
  EXPECT_EQ(trim("a b"), "a b");
  EXPECT_EQ(trim("\r\nx\r\n"), "\r\nx\r\n");
  EXPECT_EQ(trim("   "), "");
}

// Close reasons and MQTT Reason Strings are cut to a byte bound; a character cut in two made a
// reason that browsers fail the connection on (RFC 6455 8.1) and MQTT clients the packet.
TEST(TextTest, Utf8PrefixNeverSplitsACharacter) {
  EXPECT_EQ(utf8_prefix("short", 123), "short");
  EXPECT_EQ(utf8_prefix("abcdef", 3), "abc");
  EXPECT_EQ(utf8_prefix("", 0), "");
  // "é" is 2 bytes, "€" 3, "😀" 4: a bound inside each keeps the characters before it whole.
  EXPECT_EQ(utf8_prefix("a\xc3\xa9", 2), "a");
  EXPECT_EQ(utf8_prefix("a\xc3\xa9", 3), "a\xc3\xa9");
  EXPECT_EQ(utf8_prefix("\xe2\x82\xac\xe2\x82\xac", 5), "\xe2\x82\xac");
  EXPECT_EQ(utf8_prefix("\xe2\x82\xac\xe2\x82\xac", 4), "\xe2\x82\xac");
  EXPECT_EQ(utf8_prefix("\xf0\x9f\x98\x80", 3), "");
  // 120 bytes of "é" pairs and one more: the bound falls inside the 61st.
  std::string accents;
  for (int i = 0; i < 61; ++i) accents += "\xc3\xa9";
  EXPECT_EQ(utf8_prefix(accents, 121).size(), 120u);
  EXPECT_EQ(utf8_prefix(accents, 123).size(), 122u);
}

}  // namespace
}  // namespace wsbridge::text
