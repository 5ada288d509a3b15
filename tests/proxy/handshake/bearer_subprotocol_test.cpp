// The bearer subprotocol rewrite of a whole request head
// (proxy/src/handshake/bearer_subprotocol.cpp, extract_bearer_subprotocol); RequestHeadFilter,
// the same rewrite as the head arrives, is in bearer_subprotocol_head_filter_test.cpp.
#include <gtest/gtest.h>

#include "handshake/bearer_subprotocol.hpp"

namespace wsbridge {
namespace {

std::string extract(std::string head, std::optional<BearerExtraction>* out = nullptr) {
  std::size_t len = head.size();
  auto r = extract_bearer_subprotocol(head.data(), len);
  if (out) *out = r;
  head.resize(len);
  return head;
}

TEST(BearerSubprotocolTest, TakesTheTokenOutOfTheHead) {
  const std::string token(600, 't');  // far over lws' 64-byte protocol name limit
  std::optional<BearerExtraction> found;
  const std::string head = "GET /x HTTP/1.1\r\nHost: h\r\nsec-websocket-protocol: bearer." + token +
                           ", chat.v1\r\nUpgrade: websocket\r\n\r\nFRAME";
  EXPECT_EQ(extract(head, &found),
            "GET /x HTTP/1.1\r\nHost: h\r\nsec-websocket-protocol:chat.v1\r\nUpgrade: "
            "websocket\r\n\r\nFRAME");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->token, token);
  EXPECT_FALSE(found->only_bearer);
}

TEST(BearerSubprotocolTest, ManyShortValuesNeverGrowTheLine) {
  // Found by fuzz_frames: re-joining many one-letter values with ", " made the line longer than
  // the original and the in-place rewrite wrote past the buffer.
  std::optional<BearerExtraction> found;
  EXPECT_EQ(
      extract("GET /mqtt HTTP/1.1\r\nSec-WebSocket-Protocol:a,b,c,d,e,f,g,h,i,j,k,bearer.x\r\n\r\n",
              &found),
      "GET /mqtt HTTP/1.1\r\nSec-WebSocket-Protocol:a,b,c,d,e,f,g,h,i,j,k\r\n\r\n");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->token, "x");
}

TEST(BearerSubprotocolTest, DropsTheLineWhenOnlyABearerWasOffered) {
  std::optional<BearerExtraction> found;
  EXPECT_EQ(
      extract("GET / HTTP/1.1\r\nSec-WebSocket-Protocol: bearer.abc\r\nHost: h\r\n\r\n", &found),
      "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(found);
  EXPECT_TRUE(found->only_bearer);
}

TEST(BearerSubprotocolTest, LeavesEverythingElseAlone) {
  for (const std::string& head :
       {std::string("GET / HTTP/1.1\r\nSec-WebSocket-Protocol: chat, mqtt\r\n\r\n"),
        std::string("GET / HTTP/1.1\r\nHost: h\r\n\r\nSec-WebSocket-Protocol: bearer.x\r\n"),
        std::string("GET / HTTP/1.1\r\nSec-WebSocket-Protocol: bearer.x"),  // line not complete
        std::string("Sec-WebSocket-Protocol: bearer.x\r\n")}) {             // not a header line
    std::optional<BearerExtraction> found;
    EXPECT_EQ(extract(head, &found), head);
    EXPECT_FALSE(found);
  }
}

}  // namespace
}  // namespace wsbridge
