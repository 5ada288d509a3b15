// The one ASCII case folding and trimming (proxy/include/wsbridge/text.hpp).
#include "wsbridge/text.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace wsbridge::text
