// The upgrade headers lws 4.1.6 drops without an answer (proxy/src/handshake/upgrade_headers.cpp),
// at its exact bounds. A hostile probe found each one closing the connection with no status.
#include <gtest/gtest.h>

#include "handshake/upgrade_headers.hpp"

namespace wsbridge {
namespace {

std::optional<std::string> problem(std::optional<std::string_view> connection,
                                   std::optional<std::string_view> protocols = std::nullopt,
                                   std::size_t extensions = 0) {
  return upgrade_headers_problem({connection, protocols, extensions, nullptr});
}

TEST(UpgradeHeadersTest, WhatRealClientsSendPasses) {
  EXPECT_EQ(problem("Upgrade"), std::nullopt);
  EXPECT_EQ(problem("keep-alive, Upgrade"), std::nullopt);  // Firefox
  EXPECT_EQ(problem("upgrade"), std::nullopt);
  EXPECT_EQ(problem("Upgrade", "chat.v1, mqtt"), std::nullopt);
  EXPECT_EQ(problem("Upgrade", "mqttv3.1,mqtt"), std::nullopt);
  EXPECT_EQ(problem("Upgrade", std::nullopt, 42), std::nullopt);  // Chromium's offer
}

TEST(UpgradeHeadersTest, ConnectionMustCarryTheUpgradeToken) {
  EXPECT_NE(problem(std::nullopt), std::nullopt);
  EXPECT_NE(problem("keep-alive"), std::nullopt);
  EXPECT_NE(problem(""), std::nullopt);
  EXPECT_NE(problem("up"), std::nullopt);  // (lws compares a prefix: "up" passed it)
  EXPECT_NE(problem("upgraded"), std::nullopt);
  EXPECT_NE(problem("\"Upgrade\""), std::nullopt);
  EXPECT_NE(problem("keep-alive; x, Upgrade"), std::nullopt);
  const auto missing = problem("close");
  ASSERT_TRUE(missing);
  EXPECT_NE(missing->find("\"Upgrade\" token"), std::string::npos) << *missing;
  // 126 bytes is lws' most; 127 it drops.
  const std::string padding(126 - std::string_view(", Upgrade").size(), 'k');
  EXPECT_EQ(problem(padding + ", Upgrade"), std::nullopt);
  const auto longer = problem(padding + "k, Upgrade");
  ASSERT_TRUE(longer);
  EXPECT_NE(longer->find("over 126 bytes"), std::string::npos) << *longer;
}

TEST(UpgradeHeadersTest, SubprotocolListsWithinLwsBounds) {
  std::string list = "chat.v1";
  while (list.size() + 9 <= 126) list += ", chat.v1";
  ASSERT_LE(list.size(), 126u);
  EXPECT_EQ(problem("Upgrade", list), std::nullopt);
  list += std::string(127 - list.size(), 'x');
  EXPECT_NE(problem("Upgrade", list), std::nullopt);
  EXPECT_EQ(problem("Upgrade", std::string(63, 'p')), std::nullopt);
  EXPECT_NE(problem("Upgrade", std::string(64, 'p')), std::nullopt);
  EXPECT_NE(problem("Upgrade", "chat v1"), std::nullopt);
  EXPECT_NE(problem("Upgrade", "\"chat\", mqtt"), std::nullopt);
  EXPECT_NE(problem("Upgrade", "chat;v=1"), std::nullopt);
  // lws' tokenizer refuses an empty element (a leading, doubled or trailing comma) and reads a
  // number as another kind of element.
  EXPECT_NE(problem("Upgrade", ", chat.v1"), std::nullopt);
  EXPECT_NE(problem("Upgrade", "chat.v1,,mqtt"), std::nullopt);
  EXPECT_NE(problem("Upgrade", "chat.v1,"), std::nullopt);
  EXPECT_NE(problem("Upgrade", "123"), std::nullopt);
  EXPECT_NE(problem("Upgrade", "1.5"), std::nullopt);
  EXPECT_NE(problem("Upgrade", "1.2.3"), std::nullopt);
  EXPECT_EQ(problem("Upgrade", "v1.5, 1a, .5, 1.5a"), std::nullopt);  // tokens to it
  EXPECT_NE(problem("keep-alive, , Upgrade"), std::nullopt);
  EXPECT_NE(problem(", Upgrade"), std::nullopt);
  EXPECT_NE(problem("1, Upgrade"), std::nullopt);
  EXPECT_EQ(problem("Upgrade, , 1"), std::nullopt);  // past the token it looks for: not read
  // lws selects the first name it knows and reads no further: what follows is not its concern.
  const std::string after = "chat.v1, " + std::string(100, 'p') + ", a b,, 1.5,";
  const std::string before = std::string(64, 'p') + ", chat.v1";
  UpgradeHeaders h{"Upgrade", after, 0, [](std::string_view name) { return name == "chat.v1"; }};
  EXPECT_EQ(upgrade_headers_problem(h), std::nullopt);
  h.protocols = before;
  EXPECT_NE(upgrade_headers_problem(h), std::nullopt);
}

TEST(UpgradeHeadersTest, ExtensionOffersWithinLwsBound) {
  EXPECT_EQ(problem("Upgrade", std::nullopt, 254), std::nullopt);
  const auto over = problem("Upgrade", std::nullopt, 255);
  ASSERT_TRUE(over);
  EXPECT_NE(over->find("Sec-WebSocket-Extensions"), std::string::npos) << *over;
}

}  // namespace
}  // namespace wsbridge
