// Self-test for the test-support library: everything that can be checked without the proxy
// (framing over a socketpair, deflate, accept keys, the handshake against an in-process fake
// server, ports, child processes). If these fail, proxy test failures mean nothing.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <functional>
#include <thread>

#include "support/process.hpp"
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
  // A peer that never reads: send_all must give up too.
  EXPECT_THROW(client.tcp().send_all(std::string(64 << 20, 'x'), 200ms), std::runtime_error);
  EXPECT_LT(Clock::now() - start, 4s);
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

// Minimal one-connection HTTP server on 127.0.0.1 for handshake tests.
class FakeServer {
 public:
  using Handler = std::function<void(TcpConn&, const std::string& request)>;
  explicit FakeServer(Handler handler) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_fd_, 4) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("FakeServer: bind/listen failed");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, handler = std::move(handler)] {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      TcpConn conn = TcpConn::adopt(fd);
      const auto deadline = Clock::now() + 2s;
      while (conn.buffer().find("\r\n\r\n") == std::string::npos) {
        if (conn.read_some(deadline) != TcpConn::ReadStatus::kData) return;
      }
      request_ = conn.buffer();
      conn.buffer().clear();
      handler(conn, request_);
    });
  }
  ~FakeServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);  // unblocks accept if no client came
    thread_.join();
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  // Only valid after the client got its answer (the handler ran).
  const std::string& request() const { return request_; }

 private:
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::string request_;
  std::thread thread_;
};

// Value of the first request header called `name` (exact case), without streams: libstdc++'s
// streambuf trips -Wnull-dereference at -O2, and the project builds tests with that warning.
std::string header_value(const std::string& request, const std::string& name) {
  const size_t at = request.find("\r\n" + name + ":");
  if (at == std::string::npos) return {};
  const size_t begin = request.find_first_not_of(' ', at + name.size() + 3);
  return request.substr(begin, request.find("\r\n", begin) - begin);
}

std::string read_file(const std::string& path) {
  std::string out;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

TEST(Handshake, SucceedsAndKeepsBytesAfterTheHead) {
  FakeServer server([](TcpConn& conn, const std::string& req) {
    const std::string key = header_value(req, "Sec-WebSocket-Key");
    // The first frame travels in the same write as the 101 head.
    conn.send_all(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
        websocket_accept_key(key) +
        "\r\nSec-WebSocket-Extensions: permessage-deflate; "
        "client_no_context_takeover; server_max_window_bits=10\r\n\r\n" +
        encode_frame(Opcode::kText, "welcome"));
    conn.wait_closed(2s);
  });
  ClientOptions opts;
  opts.port = server.port();
  opts.path = "/chat?x=1";
  opts.offer_deflate = true;
  opts.extra_headers = {{"Origin", "http://example.test"}};
  WsClient client = WsClient::connect(opts);
  EXPECT_EQ(client.handshake_response().status, 101);
  EXPECT_EQ(client.handshake_response().header("sec-websocket-accept"),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  ASSERT_TRUE(client.deflate_negotiated());
  EXPECT_TRUE(client.deflate_params()->client_no_context_takeover);
  EXPECT_EQ(client.deflate_params()->server_max_window_bits, 10);
  EXPECT_EQ(client.read_message().data, "welcome");
  client.tcp().close();

  const std::string& req = server.request();
  EXPECT_EQ(req.rfind("GET /chat?x=1 HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_EQ(header_value(req, "Host"), "127.0.0.1:" + std::to_string(opts.port));
  EXPECT_EQ(header_value(req, "Origin"), "http://example.test");
  EXPECT_EQ(header_value(req, "Sec-WebSocket-Version"), "13");
  EXPECT_EQ(header_value(req, "Sec-WebSocket-Extensions"),
            "permessage-deflate; client_max_window_bits");
}

TEST(Handshake, WrongAcceptThrows) {
  FakeServer server([](TcpConn& conn, const std::string&) {
    conn.send_all(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n");
    conn.wait_closed(2s);
  });
  ClientOptions opts;
  opts.port = server.port();
  try {
    WsClient::connect(opts);
    FAIL() << "expected HandshakeError";
  } catch (const HandshakeError& e) {
    EXPECT_EQ(e.response().status, 101);
    EXPECT_NE(std::string(e.what()).find("Sec-WebSocket-Accept"), std::string::npos) << e.what();
  }
}

TEST(Handshake, UnofferedExtensionThrows) {
  FakeServer server([](TcpConn& conn, const std::string& req) {
    conn.send_all(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
        websocket_accept_key(header_value(req, "Sec-WebSocket-Key")) +
        "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n");
    conn.wait_closed(2s);
  });
  ClientOptions opts;
  opts.port = server.port();
  EXPECT_THROW(WsClient::connect(opts), HandshakeError);
}

TEST(Handshake, RejectionCarriesResponse) {
  FakeServer server([](TcpConn& conn, const std::string&) {
    conn.send_all("HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nX-Why: origin\r\n\r\nforbidden");
    conn.wait_closed(2s);
  });
  ClientOptions opts;
  opts.port = server.port();
  opts.key = "";  // header omitted
  try {
    WsClient::connect(opts);
    FAIL() << "expected HandshakeError";
  } catch (const HandshakeError& e) {
    EXPECT_EQ(e.response().status, 403);
    EXPECT_EQ(e.response().reason, "Forbidden");
    EXPECT_EQ(e.response().body, "forbidden");
    EXPECT_EQ(e.response().header("x-WHY"), "origin");
  }
  EXPECT_EQ(server.request().find("Sec-WebSocket-Key"), std::string::npos);
}

TEST(Http, GetWithChunkedAndCloseDelimitedBodies) {
  {
    FakeServer server([](TcpConn& conn, const std::string&) {
      conn.send_all(
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n");
      conn.wait_closed(2s);
    });
    const HttpResponse r = http_get("127.0.0.1", server.port(), "/health", {{"X-Test", "1"}});
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "hello, world");
    EXPECT_NE(server.request().find("Connection: close\r\n"), std::string::npos);
    EXPECT_NE(server.request().find("X-Test: 1\r\n"), std::string::npos);
  }
  {
    FakeServer server([](TcpConn& conn, const std::string&) {
      conn.send_all("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close");
      conn.close();
    });
    EXPECT_EQ(http_get("127.0.0.1", server.port(), "/").body, "until close");
  }
  {
    FakeServer server([](TcpConn& conn, const std::string&) {
      conn.send_all("HTTP/1.1 204 No Content\r\n\r\n");
      conn.wait_closed(2s);
    });
    EXPECT_EQ(http_get("127.0.0.1", server.port(), "/").status, 204);
  }
}

TEST(Ports, FreePortIsBindableAndWaitPortOpenWorks) {
  const uint16_t port = free_tcp_port();
  EXPECT_GT(port, 0);
  // Nothing listens there: fails fast-ish and within the timeout.
  const auto start = Clock::now();
  EXPECT_FALSE(wait_port_open("127.0.0.1", port, 200ms));
  EXPECT_LT(Clock::now() - start, 1s);
  EXPECT_THROW(TcpConn::connect("127.0.0.1", port, 200ms), std::runtime_error);

  FakeServer server([](TcpConn& conn, const std::string&) { conn.wait_closed(1s); });
  EXPECT_TRUE(wait_port_open("127.0.0.1", server.port(), 1s));
}

TEST(TempFiles, WrittenUnderOneDirectoryWithUniqueNames) {
  const std::string a = write_temp_file("proxy.yaml", "a: 1\n");
  const std::string b = write_temp_file("proxy.yaml", "b: 2\n");
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind(temp_dir() + "/", 0), 0u);
  EXPECT_EQ(b.substr(b.size() - 5), ".yaml");
  EXPECT_EQ(read_file(b), "b: 2\n");
}

TEST(Process, CapturesOutputAndExitCode) {
  auto p = ChildProcess::spawn({"/bin/sh", "-c", "echo hello; echo oops >&2; read x; exit 3"},
                               {"WSB_SELFTEST=1"});
  EXPECT_TRUE(p.wait_for_output("hello", 2s));
  EXPECT_EQ(p.wait_exit(2s), 3);  // `read` got EOF from /dev/null
  EXPECT_NE(p.output().find("oops"), std::string::npos);
  EXPECT_FALSE(p.running());
  EXPECT_FALSE(p.wait_for_output("never printed", 100ms));
}

TEST(Process, EnvironmentAndSignals) {
  auto p = ChildProcess::spawn({"sh", "-c", "echo val=$WSB_X; exec sleep 30"}, {"WSB_X=42"});
  EXPECT_TRUE(p.wait_for_output("val=42", 2s)) << p.output();
  EXPECT_TRUE(p.running());
  EXPECT_FALSE(p.wait_exit(50ms).has_value());
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait_exit(2s), 128 + SIGTERM);
  p.signal(SIGTERM);  // reaped: must be a harmless no-op
}

TEST(Process, WaitForOutputStopsWhenChildExits) {
  auto p = ChildProcess::spawn({"sh", "-c", "echo bye"});
  const auto start = Clock::now();
  EXPECT_FALSE(p.wait_for_output("listening", 5s));
  EXPECT_LT(Clock::now() - start, 2s);
}

TEST(Process, ExecFailureThrowsAndDestructorKills) {
  EXPECT_THROW(ChildProcess::spawn({"/nonexistent/wsbridge-binary"}), std::runtime_error);
  const auto start = Clock::now();
  int pid = 0;
  {
    auto p = ChildProcess::spawn({"sleep", "30"});
    pid = p.pid();
    ChildProcess moved = std::move(p);  // moved-from object must be safe to destroy
    EXPECT_TRUE(moved.running());
  }
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_NE(::kill(pid, 0), 0);  // reaped, so gone
}

}  // namespace
}  // namespace wsbridge::testing
