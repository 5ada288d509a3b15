// RequestHeadFilter (proxy/src/handshake/bearer_subprotocol.cpp): the request head followed
// as it arrives in reads of every size, the bearer taken out, the head measured as lws
// would. (A file of its own next to bearer_subprotocol_test.cpp: these run in
// core_unit_tests with the mask guard that drives the filter, labels unit;core.)
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "handshake/bearer_subprotocol.hpp"
#include "recv_hook/mask_guard.hpp"

namespace wsbridge {
namespace {

struct Filtered {
  std::string out;
  RequestHeadFilter::Result result = RequestHeadFilter::Result::kMore;
  std::size_t consumed = 0;
  HeadSummary summary;
};

// Feeds `bytes` in pieces of `piece` bytes (0: at once), checking the hold-back bound.
Filtered filter(const std::string& bytes, std::size_t piece,
                std::size_t max_bytes = mask_guard::kMaxRequestHeadBytes) {
  RequestHeadFilter f(max_bytes, mask_guard::kLwsHeaderSpace - 512u);
  Filtered r;
  std::size_t off = 0;
  while (off < bytes.size() && r.result == RequestHeadFilter::Result::kMore) {
    const std::size_t n = piece == 0 ? bytes.size() : std::min(piece, bytes.size() - off);
    const std::size_t held = f.held();
    const std::size_t before = r.out.size();
    std::size_t consumed = 0;
    r.result = f.feed(bytes.data() + off, n, &r.out, consumed);
    EXPECT_LE(r.out.size() - before, held + consumed);
    EXPECT_LE(f.held(), RequestHeadFilter::kMaxHeldBytes);
    off += consumed;
  }
  r.consumed = off;
  r.summary = f.summary();
  return r;
}

TEST(RequestHeadFilterTest, TakesABearerOutAtEverySplit) {
  const std::string token = "eyJ" + std::string(5000, 'k') + ".sig";
  const std::string head =
      "GET /private?x=1 HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Protocol: chat.v1 , bearer." + token +
      ", bear, x y\r\nUpgrade: websocket\r\nsec-websocket-protocol: bearer.second\r\n\r\n";
  const std::string expected =
      "GET /private?x=1 HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Protocol:chat.v1,bear,x "
      "y\r\nUpgrade: websocket\r\n\r\n";
  for (std::size_t piece : {0, 1, 2, 3, 5, 7, 8, 13, 23, 24, 31, 64, 100, 4080}) {
    SCOPED_TRACE(piece);
    const Filtered r = filter(head + "after", piece);
    EXPECT_EQ(r.result, RequestHeadFilter::Result::kEnd);
    EXPECT_EQ(r.consumed, head.size());
    EXPECT_EQ(r.out, expected);
    ASSERT_TRUE(r.summary.bearer);
    EXPECT_EQ(r.summary.bearer->token, token);
    EXPECT_FALSE(r.summary.bearer->only_bearer);
    EXPECT_TRUE(r.summary.upgrade);
    EXPECT_FALSE(r.summary.has_body);
    // Two tokens: the head is refused (which one is the client's?).
    EXPECT_EQ(r.summary.repeated_header, "more than one bearer token in Sec-WebSocket-Protocol");
  }
  // One is not refused.
  const Filtered one = filter(
      "GET / HTTP/1.1\r\nSec-WebSocket-Protocol: chat, bearer.abc\r\nX: bearer.x\r\n\r\n", 3);
  ASSERT_TRUE(one.summary.bearer);
  EXPECT_EQ(one.summary.bearer->token, "abc");
  EXPECT_EQ(one.summary.repeated_header, "");
}

TEST(RequestHeadFilterTest, DropsALineOfOnlyBearerEntries) {
  const Filtered r =
      filter("GET / HTTP/1.1\nSec-WebSocket-Protocol: bearer.abc,bearer.def\nX: 1\n\nrest", 1);
  EXPECT_EQ(r.out, "GET / HTTP/1.1\nX: 1\n\n");
  ASSERT_TRUE(r.summary.bearer);
  EXPECT_EQ(r.summary.bearer->token, "abc");
  EXPECT_TRUE(r.summary.bearer->only_bearer);
  EXPECT_EQ(r.summary.repeated_header, "more than one bearer token in Sec-WebSocket-Protocol");
}

TEST(RequestHeadFilterTest, TellsWhatFollowsTheHead) {
  EXPECT_FALSE(filter("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0).summary.has_body);
  EXPECT_TRUE(filter("GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\n", 0).summary.has_body);
  EXPECT_TRUE(filter("POST / HTTP/1.1\r\n\r\n", 0).summary.has_body);
  EXPECT_TRUE(filter("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 0).summary.has_body);
  EXPECT_FALSE(filter("GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", 0)
                   .summary.has_body);
  EXPECT_TRUE(filter("GET / HTTP/1.0\r\n\r\n", 0).summary.http_1_0);
  EXPECT_FALSE(filter("GET / HTTP/1.1\r\n\r\n", 0).summary.http_1_0);
  EXPECT_EQ(filter("GET / HTTP/1.1\r\nHost: a\r\nhOsT: b\r\n\r\n", 0).summary.hosts, 2);
  EXPECT_EQ(filter("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", 0).summary.hosts, 0);
  EXPECT_FALSE(filter("GET / HTTP/1.1\r\nUpgrade:  \r\n\r\n", 0).summary.upgrade);
}

// Where the body ends, as the shard's framing rule serves it (request_framing.hpp): repeats and
// lists of one number count; anything it refuses has no known end.
TEST(RequestHeadFilterTest, KnowsTheBodyLengthWhereItIsPlain) {
  auto length = [](const std::string& headers) {
    return filter("POST / HTTP/1.1\r\n" + headers + "\r\n", 1).summary.body_length;
  };
  EXPECT_EQ(length("Content-Length: 12\r\n"), 12u);
  EXPECT_EQ(length("Content-Length:\t7 \r\n"), 7u);
  EXPECT_EQ(length("Content-Length: 5\r\ncontent-length: 5\r\n"), 5u);
  EXPECT_EQ(length("Content-Length: 5, 5,5\r\n"), 5u);
  EXPECT_EQ(length("Content-Length: 0\r\n"), 0u);
  for (const char* doubtful :
       {"Content-Length: 5\r\nContent-Length: 6\r\n", "Content-Length: 5, 6\r\n",
        "Content-Length: -1\r\n", "Content-Length: 5x\r\n", "Content-Length: \r\n",
        "Content-Length: 1234567890123456789\r\n", "Content-Length: 5\r\nTransfer-Encoding: x\r\n",
        ""}) {
    SCOPED_TRACE(doubtful);
    const Filtered r = filter(std::string("POST / HTTP/1.1\r\n") + doubtful + "\r\n", 0);
    EXPECT_FALSE(r.summary.body_length);
    EXPECT_TRUE(r.summary.has_body);
  }
  EXPECT_TRUE(filter("GET / HTTP/1.1\r\n\r\n", 0).summary.get_or_head);
  EXPECT_TRUE(filter("head / HTTP/1.1\r\n\r\n", 0).summary.get_or_head);
  EXPECT_FALSE(filter("POST / HTTP/1.1\r\n\r\n", 0).summary.get_or_head);
}

// RFC 9112 2.2: empty lines before a request line are not part of it (nor measured).
TEST(RequestHeadFilterTest, SkipsEmptyLinesBeforeARequest) {
  for (std::size_t piece : {0, 1, 2}) {
    const Filtered r = filter("\r\n\n\r\nGET / HTTP/1.1\r\nX: 1\r\n\r\nnext", piece);
    EXPECT_EQ(r.result, RequestHeadFilter::Result::kEnd);
    EXPECT_EQ(r.out, "GET / HTTP/1.1\r\nX: 1\r\n\r\n");
    EXPECT_EQ(r.consumed, 5u + 24u);
  }
}

TEST(RequestHeadFilterTest, RefusesLinesLwsWouldReadDifferently) {
  // lws 4.1.6 reads an unknown header name up to the next ':' even across line ends, so a line
  // without a colon could hide where its head ends.
  for (const char* head :
       {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", "GET / HTTP/1.1\r\n folded: x\r\n\r\n",
        "GET / HTTP/1.1\r\nName : x\r\n\r\n", "GET / HTTP/1.1\r\n\rX: y\r\n\r\n"}) {
    SCOPED_TRACE(head);
    EXPECT_EQ(filter(head, 0).result, RequestHeadFilter::Result::kMalformed);
  }
}

TEST(RequestHeadFilterTest, MeasuresTheHeadAsSent) {
  const std::string big = "GET / HTTP/1.1\r\nSec-WebSocket-Protocol: a, bearer." +
                          std::string(mask_guard::kMaxRequestHeadBytes, 't') + "\r\n\r\n";
  EXPECT_EQ(filter(big, 1000).result, RequestHeadFilter::Result::kTooLarge);
  // Many tiny lines cost lws more than their bytes: bounded too, by their number first.
  std::string lines = "GET / HTTP/1.1\r\n";
  while (lines.size() < 12000) lines += "a:\n";
  EXPECT_EQ(filter(lines + "\r\n", 0).result, RequestHeadFilter::Result::kTooManyFields);
}

// An Upgrade line reaches lws only when it offers "websocket": "h2c" (curl --http2, Java's
// HttpClient), which lws would switch to HTTP/2 on, and any other protocol, which lws would
// answer with a 403, go before lws sees them, as does any Upgrade in an HTTP/1.0 request (RFC
// 9110 7.8) and a value too long to be an upgrade lws does. A list naming "websocket" reaches
// lws as "websocket" alone, as does "websocket" in another case; "websocket" itself as sent. At
// every split of the reads.
TEST(RequestHeadFilterTest, LetsOnlyWebSocketUpgradesThrough) {
  const std::string h2c =
      "GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
      "Upgrade:  H2C \r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
  const std::string h2c_out =
      "GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
      "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
  const std::string ws =
      "GET /echo HTTP/1.1\r\nHost: h\r\nupgrade:  WebSocket \r\nUpgrades: h2c\r\n\r\n";
  const std::string others =
      "GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: foo/2\r\nUpgrade: " + std::string(60, 'x') +
      "\r\nUpgrade: TLS/1.0, websocket2\r\nUpgrade:\r\nUp: 1\r\n\r\n";
  const std::string listed =
      "GET /echo HTTP/1.1\r\nHost: h\r\nUPGRADE:foo, WebSocket ,bar\r\nUpgrade: websocket,\n\r\n";
  const std::string old_ws =
      "GET /echo HTTP/1.0\r\nUpgrade: websocket\r\nUpgrade: " + std::string(60, 'y') +
      "\r\nX: 1\r\n\r\n";
  for (std::size_t piece : {0, 1, 2, 3, 7, 9, 16, 41}) {
    SCOPED_TRACE(piece);
    Filtered r = filter(h2c, piece);
    EXPECT_EQ(r.result, RequestHeadFilter::Result::kEnd);
    EXPECT_EQ(r.out, h2c_out);
    EXPECT_FALSE(r.summary.upgrade);
    r = filter(ws, piece);  // (lws compares the value with strcmp: "WebSocket" was hung up)
    EXPECT_EQ(r.out,
              "GET /echo HTTP/1.1\r\nHost: h\r\nupgrade: websocket\r\nUpgrades: h2c\r\n\r\n");
    EXPECT_TRUE(r.summary.upgrade);
    r = filter(others, piece);
    EXPECT_EQ(r.result, RequestHeadFilter::Result::kEnd);
    EXPECT_EQ(r.out, "GET /echo HTTP/1.1\r\nHost: h\r\nUp: 1\r\n\r\n");
    EXPECT_FALSE(r.summary.upgrade);
    r = filter(listed, piece);
    EXPECT_EQ(r.out,
              "GET /echo HTTP/1.1\r\nHost: h\r\nUPGRADE: websocket\r\nUpgrade: websocket\n\r\n");
    EXPECT_TRUE(r.summary.upgrade);
    r = filter(old_ws, piece);
    EXPECT_EQ(r.out, "GET /echo HTTP/1.0\r\nX: 1\r\n\r\n");
    EXPECT_FALSE(r.summary.upgrade);
  }
}

// A NUL, or a CR that does not end a line, anywhere in the head: lws 4.1.6 ends a value at a
// bare CR. More header lines and query arguments than lws has slots for: kTooManyFields.
TEST(RequestHeadFilterTest, RefusesBareCrNulAndMoreFieldsThanLwsHolds) {
  for (const std::string& head : std::initializer_list<std::string>{
           "GET / HTTP/1.1\r\nOrigin: https://a\r.evil\r\n\r\n", "GET /\r HTTP/1.1\r\n\r\n",
           std::string("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 26),
           "GET / HTTP/1.1\r\nX: a\r\r\n\r\n"}) {
    for (std::size_t piece : {0, 1, 5}) {
      EXPECT_EQ(filter(head, piece).result, RequestHeadFilter::Result::kMalformed) << head;
    }
  }
  std::string lines = "GET /?a&b HTTP/1.1\r\n";  // two arguments
  for (std::size_t i = 0; i + 2 < RequestHeadFilter::kMaxFieldsAndArguments; ++i)
    lines += "A: b\r\n";
  EXPECT_EQ(filter(lines + "\r\n", 0).result, RequestHeadFilter::Result::kEnd);
  EXPECT_EQ(filter(lines + "A: b\r\n\r\n", 7).result, RequestHeadFilter::Result::kTooManyFields);
  // (Bare LF line ends stay as they were: lws and the guard agree on them.)
  EXPECT_EQ(filter("GET / HTTP/1.1\nHost: h\n\n", 0).result, RequestHeadFilter::Result::kEnd);
}

}  // namespace
}  // namespace wsbridge
