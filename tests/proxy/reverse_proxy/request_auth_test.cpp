// What a relayed request shows the authenticator
// (proxy/src/reverse_proxy/request_auth.cpp).
#include "reverse_proxy/request_auth.hpp"

#include <gtest/gtest.h>

namespace wsbridge::reverse_proxy {
namespace {

RequestHead head_of(std::string target, HttpHeaders headers, bool upgrade = false) {
  RequestHead head;
  head.method = "GET";
  head.target = std::move(target);
  head.headers = std::move(headers);
  head.websocket_upgrade = upgrade;
  return head;
}

TEST(RequestAuthTest, CredentialsComeFromTheUsualPlaces) {
  const auto request = auth::HandshakeRequest(
      handshake_request_of(head_of("/api/x?access_token=a%2Eb+c&flag&=v&x=%zz",
                                   {{"Authorization", "Bearer t1"},
                                    {"cookie", "a=1"},
                                    {"Cookie", "access_token=t2"},
                                    {"Origin", "https://page.example"},
                                    {"Sec-WebSocket-Protocol", "chat, bearer.t3"}})));
  EXPECT_EQ(request.authorization, "Bearer t1");
  EXPECT_EQ(request.cookie, "a=1; access_token=t2");  // one line, as RFC 6265 sends it
  ASSERT_EQ(request.query.size(), 4u);
  EXPECT_EQ(request.query[0], (std::pair<std::string, std::string>{"access_token", "a.b c"}));
  EXPECT_EQ(request.query[1], (std::pair<std::string, std::string>{"flag", ""}));
  EXPECT_EQ(request.query[2], (std::pair<std::string, std::string>{"", "v"}));
  EXPECT_EQ(request.query[3], (std::pair<std::string, std::string>{"x", "%zz"}));
  // Origin and subprotocols matter to upgrades only: a page's requests carry no allowlist check.
  EXPECT_FALSE(request.origin);
  EXPECT_TRUE(request.subprotocols.empty());
}

TEST(RequestAuthTest, AnUpgradeShowsItsOriginAndSubprotocols) {
  const auto request = handshake_request_of(head_of("/ws",
                                                    {{"Origin", "https://page.example"},
                                                     {"Sec-WebSocket-Protocol", "chat, bearer.t3"},
                                                     {"Sec-WebSocket-Protocol", "v2"}},
                                                    true));
  EXPECT_EQ(request.origin, "https://page.example");
  EXPECT_EQ(request.subprotocols, (std::vector<std::string>{"chat", "bearer.t3", "v2"}));
  EXPECT_FALSE(request.authorization);
  EXPECT_FALSE(request.cookie);
}

TEST(RequestAuthTest, BearerOffersNeverReachTheBackend) {
  RequestHead head = head_of(
      "/ws", {{"Host", "h"}, {"Sec-WebSocket-Protocol", "bearer.secret, chat"}, {"X", "y"}}, true);
  strip_bearer_offers(head);
  ASSERT_EQ(head.headers.size(), 3u);
  EXPECT_EQ(head.headers[2].name, "Sec-WebSocket-Protocol");
  EXPECT_EQ(head.headers[2].value, "chat");

  RequestHead only = head_of("/ws", {{"sec-websocket-protocol", "bearer.secret"}}, true);
  strip_bearer_offers(only);
  EXPECT_TRUE(only.headers.empty());

  RequestHead none = head_of("/ws", {{"Sec-WebSocket-Protocol", "chat,  v2"}}, true);
  strip_bearer_offers(none);
  ASSERT_EQ(none.headers.size(), 1u);
  EXPECT_EQ(none.headers[0].value, "chat,  v2");  // untouched when there was nothing to take
}

TEST(RequestAuthTest, PercentDecodingKeepsWhatIsMalformed) {
  EXPECT_EQ(percent_decode("a%20b+c"), "a b c");
  EXPECT_EQ(percent_decode("%41%4a%4A"), "AJJ");
  EXPECT_EQ(percent_decode("100%"), "100%");
  EXPECT_EQ(percent_decode("%4"), "%4");
  EXPECT_EQ(percent_decode("%g1"), "%g1");
  EXPECT_EQ(percent_decode(""), "");
}

}  // namespace
}  // namespace wsbridge::reverse_proxy
