// The WebSocket handshake fields the reverse proxy checks (proxy/src/reverse_proxy/
// websocket_handshake.cpp): the browser's key and version, and the backend's 101, which must be
// the WebSocket answer to that key before the connection becomes a tunnel.
#include "reverse_proxy/websocket_handshake.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wsbridge::reverse_proxy {
namespace {

constexpr const char* kKey = "dGhlIHNhbXBsZSBub25jZQ==";         // RFC 6455 1.3's example
constexpr const char* kAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";  // ... and its answer

RequestHead upgrade(HttpHeaders extra) {
  RequestHead r;
  r.method = "GET";
  r.target = "/ws";
  r.websocket_upgrade = true;
  r.headers = {{"Host", "a"}, {"Upgrade", "websocket"}, {"Connection", "Upgrade"}};
  for (auto& h : extra) r.headers.push_back(std::move(h));
  return r;
}

RequestHead good_upgrade() {
  return upgrade({{"Sec-WebSocket-Key", kKey}, {"Sec-WebSocket-Version", "13"}});
}

ResponseHead switching(HttpHeaders headers) {
  ResponseHead r;
  r.status = 101;
  r.headers = std::move(headers);
  return r;
}

TEST(WebSocketHandshake, AcceptIsRfc6455sExample) {
  EXPECT_EQ(websocket_accept_for(kKey), kAccept);
}

TEST(WebSocketHandshake, AWellFormedUpgradePasses) {
  EXPECT_FALSE(websocket_request_problem(good_upgrade()));
}

TEST(WebSocketHandshake, KeysThatAreNotSixteenBase64BytesAreRefused) {
  for (const char* key : {"", "short", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZSE=",
                          "dGhlIHNhbXBsZSBub25jZQ==x", "dGhlIHNhbXBsZSBub25jZQ=!"}) {
    const auto problem = websocket_request_problem(
        upgrade({{"Sec-WebSocket-Key", key}, {"Sec-WebSocket-Version", "13"}}));
    ASSERT_TRUE(problem) << key;
    EXPECT_EQ(problem->status, 400u) << key;
  }
  const auto missing = websocket_request_problem(upgrade({{"Sec-WebSocket-Version", "13"}}));
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 400u);
  const auto twice = websocket_request_problem(upgrade(
      {{"Sec-WebSocket-Key", kKey}, {"Sec-WebSocket-Key", kKey}, {"Sec-WebSocket-Version", "13"}}));
  ASSERT_TRUE(twice);
  EXPECT_EQ(twice->status, 400u);
}

TEST(WebSocketHandshake, VersionsOtherThan13Get426) {
  for (const std::vector<std::string>& versions :
       {std::vector<std::string>{}, {"8"}, {"13, 8"}, {"13", "13"}, {"013"}}) {
    HttpHeaders fields{{"Sec-WebSocket-Key", kKey}};
    for (const auto& v : versions) fields.push_back({"Sec-WebSocket-Version", v});
    const auto problem = websocket_request_problem(upgrade(fields));
    ASSERT_TRUE(problem) << versions.size();
    EXPECT_EQ(problem->status, 426u);
  }
}

TEST(WebSocketHandshake, TheRightAnswerBecomesATunnel) {
  EXPECT_FALSE(websocket_switch_problem(switching({{"Upgrade", "WebSocket"},
                                                   {"Connection", "keep-alive, Upgrade"},
                                                   {"Sec-WebSocket-Accept", kAccept}}),
                                        good_upgrade()));
}

// Each of these would have opened a raw pipe to the backend ("WebSocket smuggling").
TEST(WebSocketHandshake, A101ThatIsNotTheAnswerToThisKeyIsRefused) {
  const RequestHead request = good_upgrade();
  const std::vector<HttpHeaders> answers = {
      {},                                                     // a bare 101
      {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}},  // no accept
      {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Accept", "x"}},
      {{"Upgrade", "websocket"},
       {"Connection", "Upgrade"},
       {"Sec-WebSocket-Accept", websocket_accept_for("AQIDBAUGBwgJCgsMDQ4PEA==")}},
      {{"Upgrade", "websocket"},
       {"Connection", "Upgrade"},
       {"Sec-WebSocket-Accept", kAccept},
       {"Sec-WebSocket-Accept", kAccept}},
      {{"Upgrade", "h2c"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Accept", kAccept}},
      {{"Upgrade", "websocket"}, {"Sec-WebSocket-Accept", kAccept}},  // no Connection: upgrade
  };
  for (std::size_t i = 0; i < answers.size(); ++i) {
    EXPECT_TRUE(websocket_switch_problem(switching(answers[i]), request)) << "answer " << i;
  }
  RequestHead plain = request;
  plain.websocket_upgrade = false;
  EXPECT_TRUE(websocket_switch_problem(
      switching(
          {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Accept", kAccept}}),
      plain));
}

}  // namespace
}  // namespace wsbridge::reverse_proxy
