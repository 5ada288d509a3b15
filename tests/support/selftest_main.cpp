// Self-test for the test-support library: everything that can be checked without the proxy
// (framing over a socketpair, deflate, accept keys; the handshake against an in-process fake
// server, HTTP, ports and child processes are in selftest_tcp_process.cpp). If these fail, proxy
// test failures mean nothing.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <thread>

#include "support/ws_test_client.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Pair {
  WsClient client;
  TcpConn peer;  // plays the server
};

Pair make_pair(std::optional<DeflateParams> deflate = std::nullopt) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    throw std::runtime_error("socketpair failed");
  }
  return Pair{WsClient::adopt(TcpConn::adopt(fds[0]), deflate), TcpConn::adopt(fds[1])};
}

// Reads one frame on the fake-server side.
Frame peer_read_frame(TcpConn& peer, std::chrono::milliseconds timeout = 2s) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto f = decode_frame(peer.buffer())) return *f;
    if (peer.read_some(deadline) != TcpConn::ReadStatus::kData) {
      throw std::runtime_error("peer_read_frame: no frame");
    }
  }
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + 7) & 0xff);
  return s;
}

TEST(AcceptKey, Rfc6455Sample) {
  EXPECT_EQ(websocket_accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_EQ(random_websocket_key().size(), 24u);
  EXPECT_NE(random_websocket_key(), random_websocket_key());
}

TEST(Frame, EncodingMatchesRfcExamples) {
  // RFC 6455 5.7: unmasked "Hello" and masked "Hello" with key 37 fa 21 3d.
  EXPECT_EQ(encode_frame(Opcode::kText, "Hello"), std::string("\x81\x05Hello", 7));
  EXPECT_EQ(encode_frame(Opcode::kText, "Hello", true, MaskKey{0x37, 0xfa, 0x21, 0x3d}),
            std::string("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11));
  EXPECT_EQ(encode_frame(Opcode::kBinary, std::string(256, 'x')).substr(0, 4),
            std::string("\x82\x7e\x01\x00", 4));
  EXPECT_EQ(encode_frame(Opcode::kBinary, std::string(65536, 'x')).substr(0, 10),
            std::string("\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10));
  std::string partial = encode_frame(Opcode::kText, "Hello").substr(0, 4);
  EXPECT_FALSE(decode_frame(partial).has_value());
  EXPECT_EQ(partial.size(), 4u);  // untouched
  std::string bad("\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10);
  EXPECT_THROW(decode_frame(bad), std::runtime_error);
}

TEST(Frame, ClientToServerRoundTripAllLengthForms) {
  auto [client, peer] = make_pair();
  for (size_t n : {0, 1, 125, 126, 127, 65535, 65536, 70000}) {
    const std::string payload = pattern(n);
    client.send_binary(payload);
    const Frame f = peer_read_frame(peer);
    EXPECT_TRUE(f.masked) << n;
    EXPECT_TRUE(f.fin);
    EXPECT_FALSE(f.rsv1);
    EXPECT_EQ(f.opcode, Opcode::kBinary);
    EXPECT_EQ(f.payload, payload) << n;
  }
  client.send_frame(Opcode::kText, "raw", false, /*mask=*/false);
  const Frame f = peer_read_frame(peer);
  EXPECT_FALSE(f.masked);
  EXPECT_FALSE(f.fin);
  EXPECT_EQ(f.payload, "raw");
}

TEST(Frame, ServerToClientRoundTripAllLengthForms) {
  auto [client, peer] = make_pair();
  for (size_t n : {0, 125, 126, 65535, 65536, 70000}) {
    const std::string payload = pattern(n);
    peer.send_all(encode_frame(Opcode::kBinary, payload));
    const Frame f = client.read_frame();
    EXPECT_FALSE(f.masked);
    EXPECT_EQ(f.payload, payload) << n;
  }
  // Several frames in one write are split correctly.
  peer.send_all(encode_frame(Opcode::kText, "a") + encode_frame(Opcode::kText, "b"));
  EXPECT_EQ(client.read_message().data, "a");
  EXPECT_EQ(client.read_message().data, "b");
}

TEST(Message, ReassemblesAndAnswersPings) {
  auto [client, peer] = make_pair();
  peer.send_all(encode_frame(Opcode::kText, "Hel", false) + encode_frame(Opcode::kPing, "p") +
                encode_frame(Opcode::kContinuation, "lo", true));
  const auto msg = client.read_message();
  EXPECT_EQ(msg.opcode, Opcode::kText);
  EXPECT_EQ(msg.data, "Hello");
  EXPECT_EQ(client.pings_received(), 1);
  const Frame pong = peer_read_frame(peer);
  EXPECT_EQ(pong.opcode, Opcode::kPong);
  EXPECT_EQ(pong.payload, "p");
  EXPECT_TRUE(pong.masked);

  client.set_auto_pong(false);
  peer.send_all(encode_frame(Opcode::kPing, "q") + encode_frame(Opcode::kBinary, "x"));
  EXPECT_EQ(client.read_message().data, "x");
  EXPECT_EQ(client.pings_received(), 2);
  EXPECT_FALSE(peer.wait_closed(50ms));
  EXPECT_TRUE(peer.buffer().empty());  // no pong sent
}

TEST(Message, RejectsServerProtocolViolations) {
  {
    auto [client, peer] = make_pair();
    peer.send_all(encode_frame(Opcode::kText, "x", true, random_mask_key()));
    EXPECT_THROW(client.read_message(), std::runtime_error);
  }
  {
    auto [client, peer] = make_pair();
    peer.send_all(encode_frame(Opcode::kContinuation, "x"));
    EXPECT_THROW(client.read_message(), std::runtime_error);
  }
  {
    auto [client, peer] = make_pair();
    peer.send_all(encode_frame(Opcode::kText, "x", true, std::nullopt, /*rsv1=*/true));
    EXPECT_THROW(client.read_message(), std::runtime_error);  // deflate not negotiated
  }
}

TEST(Close, EchoesCodeAndReportsIt) {
  auto [client, peer] = make_pair();
  std::string body(
      "\x03\xe9"
      "bye",
      5);  // 1001
  peer.send_all(encode_frame(Opcode::kBinary, "ignored") + encode_frame(Opcode::kPing, "") +
                encode_frame(Opcode::kClose, body));
  EXPECT_EQ(client.wait_close(), 1001);
  EXPECT_EQ(peer_read_frame(peer).opcode, Opcode::kPong);
  const Frame echo = peer_read_frame(peer);
  EXPECT_EQ(echo.opcode, Opcode::kClose);
  EXPECT_EQ(echo.payload, std::string("\x03\xe9", 2));
  EXPECT_TRUE(client.close_sent());
}

TEST(Close, ReadMessageReturnsCloseThenWaitCloseEchoes) {
  auto [client, peer] = make_pair();
  peer.send_all(encode_frame(Opcode::kClose, ""));
  const auto msg = client.read_message();
  EXPECT_EQ(msg.opcode, Opcode::kClose);
  EXPECT_EQ(msg.close_code(), 1005);
  EXPECT_EQ(client.wait_close(), 1005);
  const Frame echo = peer_read_frame(peer);
  EXPECT_EQ(echo.opcode, Opcode::kClose);
  EXPECT_TRUE(echo.payload.empty());  // 1005 is never put on the wire
}

TEST(Close, EofWithoutCloseFrameIs1006) {
  auto [client, peer] = make_pair();
  peer.close();
  EXPECT_EQ(client.wait_close(1s), 1006);
}

TEST(Timeouts, ReadsGiveUp) {
  auto [client, peer] = make_pair();
  const auto start = Clock::now();
  EXPECT_THROW(client.read_frame(100ms), std::runtime_error);
  EXPECT_THROW(client.read_message(100ms), std::runtime_error);
  EXPECT_THROW(client.wait_close(100ms), std::runtime_error);
  EXPECT_THROW(peer.read_http_response(100ms), std::runtime_error);
  EXPECT_FALSE(peer.wait_closed(100ms));
  EXPECT_LT(Clock::now() - start, 2s);
  // A peer that never reads: send_all must give up too, at its deadline and not at the end of
  // the bytes. (The 64 MiB are made before the clock starts: under ThreadSanitizer, beside
  // other tests, making them took seconds. What the kernel takes before the peer's window
  // closes is a few MiB, copied in one call each.)
  const std::string more_than_the_kernel_holds(64 << 20, 'x');
  const auto send_start = Clock::now();
  EXPECT_THROW(client.tcp().send_all(more_than_the_kernel_holds, 200ms), std::runtime_error);
  EXPECT_LT(Clock::now() - send_start, 2s);
}

TEST(Deflate, RoundTripWithContextTakeover) {
  Deflater d;
  Inflater i;
  const std::string text = "The quick brown fox jumps over the lazy dog. " + pattern(1000);
  const std::string c1 = d.compress(text);
  const std::string c2 = d.compress(text);
  EXPECT_LT(c2.size(), c1.size());  // second copy references the first via the window
  EXPECT_EQ(i.decompress(c1), text);
  EXPECT_EQ(i.decompress(c2), text);
  EXPECT_EQ(i.decompress(d.compress("")), "");
  const std::string big = pattern(300000);
  EXPECT_EQ(i.decompress(d.compress(big)), big);
}

TEST(Deflate, Rfc7692Examples) {
  Inflater i;
  // 7.2.3.1 / 7.2.3.2: "Hello" twice with a shared window.
  EXPECT_EQ(i.decompress(std::string("\xf2\x48\xcd\xc9\xc9\x07\x00", 7)), "Hello");
  EXPECT_EQ(i.decompress(std::string("\xf2\x00\x11\x00\x00", 5)), "Hello");
  Inflater j;
  // 7.2.3.3: stored block; 7.2.3.4: BFINAL set.
  EXPECT_EQ(j.decompress(std::string("\x00\x05\x00\xfa\xff"
                                     "Hello",
                                     10)),
            "Hello");
  Inflater k;
  EXPECT_EQ(k.decompress(std::string("\xf3\x48\xcd\xc9\xc9\x07\x00\x00", 8)), "Hello");
  EXPECT_THROW(Inflater().decompress("garbage that is not deflate \xff\xff"), std::runtime_error);
}

TEST(Deflate, OverTheWireBothDirections) {
  auto [client, peer] = make_pair(DeflateParams{});
  ASSERT_TRUE(client.deflate_negotiated());
  Inflater server_inflate;
  Deflater server_deflate;
  const std::string text(5000, 'a');
  for (int round = 0; round < 3; ++round) {
    client.send_text(text);
    const Frame f = peer_read_frame(peer);
    EXPECT_TRUE(f.rsv1);
    EXPECT_LT(f.payload.size(), text.size());
    EXPECT_EQ(server_inflate.decompress(f.payload), text);

    // Server: compressed message split over two frames, RSV1 only on the first.
    const std::string c = server_deflate.compress(text + std::to_string(round));
    peer.send_all(encode_frame(Opcode::kText, c.substr(0, 3), false, std::nullopt, true) +
                  encode_frame(Opcode::kContinuation, c.substr(3), true));
    EXPECT_EQ(client.read_message().data, text + std::to_string(round));
  }
  client.send_text("plain", /*compress=*/false);
  const Frame f = peer_read_frame(peer);
  EXPECT_FALSE(f.rsv1);
  EXPECT_EQ(f.payload, "plain");
}

TEST(Deflate, NoContextTakeoverResetsStreams) {
  DeflateParams params;
  params.client_no_context_takeover = true;
  params.server_no_context_takeover = true;
  auto [client, peer] = make_pair(params);
  const std::string text = "no context takeover " + pattern(200);
  client.send_binary(text);
  client.send_binary(text);
  const Frame a = peer_read_frame(peer);
  const Frame b = peer_read_frame(peer);
  EXPECT_EQ(a.payload, b.payload);  // identical because the window was reset
  // Each server message decodes with a fresh stream.
  for (int n = 0; n < 2; ++n) {
    Deflater fresh;
    peer.send_all(encode_frame(Opcode::kBinary, fresh.compress(text), true, std::nullopt, true));
    EXPECT_EQ(client.read_message().data, text);
  }
}

}  // namespace
}  // namespace wsbridge::testing
