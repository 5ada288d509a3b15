// The front end over real sockets against a real wsbridge process: handshake, HTTP endpoints,
// echo of every message shape, the limits and their close codes, pings, idle timeouts and
// permessage-deflate.
//
// Compiled twice (tests/CMakeLists.txt): as websocket_protocol_tests over ws:// and http://, and
// with WSBRIDGE_TEST_OVER_TLS as tls_websocket_protocol_tests (ctest names "tls.*", label tls)
// over wss:// and https://, the listeners then carrying a test certificate: every guarantee of
// the plaintext path (the unmasked-frame close hooked on the socket, deflate, the limits) must
// hold behind TLS too (#15.2).
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

#include "support/tls_config.hpp"
#include "wsbridge_instance.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

#ifdef WSBRIDGE_TEST_OVER_TLS
constexpr bool kOverTls = true;
#else
constexpr bool kOverTls = false;
#endif

// A listener's TLS table when the suite runs over TLS; nothing otherwise.
std::string tls_if_on() {
  return kOverTls ? tls_table(TestPki::get().server) : std::string();
}
std::optional<TlsOptions> client_tls() {
  if (!kOverTls) return std::nullopt;
  return trust_test_ca();
}
const std::string kScheme = kOverTls ? "wss://" : "ws://";

// A connection to a listener, TLS established when the suite runs over TLS.
TcpConn raw_connect(uint16_t port) {
  return TcpConn::connect("127.0.0.1", port, client_tls());
}
HttpResponse get(uint16_t port, const std::string& path) {
  ClientOptions opts;
  opts.port = port;
  opts.path = path;
  opts.tls = client_tls();
  return http_get(opts);
}

std::string config() {
  return R"(
[server]
static_dir = "${SOURCE_DIR}/tests/integration/static"
[[listeners]]
address = "127.0.0.1"
port = ${PORT}
compression = "off"
)" + tls_if_on() +
         R"(
[[listeners]]
address = "127.0.0.1"
port = ${PORT2}
compression = "per_connection"
)" + tls_if_on() +
         R"(
[[routes]]
path = "/echo"
adapter = "echo"
prefix = "Echo: "
[[routes]]
path = "/raw"
adapter = "echo"
max_message_bytes = "2MiB"
[[routes]]
path = "/small"
adapter = "echo"
max_message_bytes = 1024
[[routes]]
path = "/lively"
adapter = "echo"
ping_interval = "300ms"
idle_timeout = "1200ms"
)";
}

class WebSocketProtocolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new WsbridgeInstance(config(), {"--log-level", "debug"});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static ClientOptions client(const std::string& path) {
    ClientOptions opts = server_->client(path);
    opts.tls = client_tls();
    return opts;
  }
  static WsClient connect(const std::string& path) { return WsClient::connect(client(path)); }
  static std::string random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  }
  static WsbridgeInstance* server_;
};
WsbridgeInstance* WebSocketProtocolTest::server_ = nullptr;

TEST_F(WebSocketProtocolTest, HandshakeAnswersTheRfcSampleKey) {
  auto opts = client("/echo");
  opts.key = "dGhlIHNhbXBsZSBub25jZQ==";
  WsClient ws = WsClient::connect(opts);
  EXPECT_EQ(ws.handshake_response().status, 101);
  EXPECT_EQ(ws.handshake_response().header("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_F(WebSocketProtocolTest, EchoesTextWithPrefixLikeTheSeedServer) {
  WsClient ws = connect("/echo");
  ws.send_text("Hello Server!");
  auto m = ws.read_message();
  EXPECT_EQ(m.opcode, Opcode::kText);
  EXPECT_EQ(m.data, "Echo: Hello Server!");
  ws.send_close(1000);
  EXPECT_EQ(ws.wait_close(), 1000);
}

TEST_F(WebSocketProtocolTest, EchoesBinaryAsBinary) {
  WsClient ws = connect("/raw");
  const std::string payload = random_bytes(70000, 1);  // 64-bit length form
  ws.send_binary(payload);
  auto m = ws.read_message();
  EXPECT_EQ(m.opcode, Opcode::kBinary);
  EXPECT_EQ(m.data, payload);
}

// Frames queued for one connection go out several per write (server.cpp, write_batch): every
// length encoding (7, 16 and 64 bits) and both types must come out intact and in order.
TEST_F(WebSocketProtocolTest, QueuedFramesWrittenTogetherStayIntactAndInOrder) {
  WsClient ws = connect("/raw");
  const std::size_t sizes[] = {0, 1, 125, 126, 127, 1000, 65535, 65536, 70000, 3, 200000, 7};
  std::vector<std::string> sent;
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < std::size(sizes); ++i) {
      const bool binary = (i + round) % 2 == 1;
      std::string payload = binary
                                ? random_bytes(sizes[i], static_cast<unsigned>(i + 10 * round))
                                : std::string(sizes[i], static_cast<char>('a' + (i + round) % 26));
      if (binary) {
        ws.send_binary(payload);
      } else {
        ws.send_text(payload);
      }
      sent.push_back(std::move(payload));
    }
  }
  // Only now read: the echoes piled up in the server's queue meanwhile.
  for (std::size_t k = 0; k < sent.size(); ++k) {
    auto m = ws.read_message();
    const bool binary = (k % std::size(sizes) + k / std::size(sizes)) % 2 == 1;
    EXPECT_EQ(m.opcode, binary ? Opcode::kBinary : Opcode::kText) << "message " << k;
    ASSERT_EQ(m.data.size(), sent[k].size()) << "message " << k;
    EXPECT_EQ(m.data, sent[k]) << "message " << k;
  }
}

TEST_F(WebSocketProtocolTest, ReassemblesFragmentedMessages) {
  WsClient ws = connect("/raw");
  ws.send_frame(Opcode::kText, "Hel", false);
  ws.send_frame(Opcode::kPing, "mid-message ping");  // control frames may interleave
  ws.send_frame(Opcode::kContinuation, "lo, ", false);
  ws.send_frame(Opcode::kContinuation, "fragments", true);
  auto m = ws.read_message();
  EXPECT_EQ(m.opcode, Opcode::kText);
  EXPECT_EQ(m.data, "Hello, fragments");
  ws.send_frame(Opcode::kBinary, std::string(5000, 'a'), false);
  ws.send_frame(Opcode::kContinuation, std::string(5000, 'b'), true);
  m = ws.read_message();
  EXPECT_EQ(m.opcode, Opcode::kBinary);
  EXPECT_EQ(m.data, std::string(5000, 'a') + std::string(5000, 'b'));
}

TEST_F(WebSocketProtocolTest, EchoesOneMebibyteMessages) {
  WsClient ws = connect("/raw");
  const std::string payload = random_bytes(1024 * 1024, 2);
  ws.send_binary(payload);
  auto m = ws.read_message(10s);
  EXPECT_EQ(m.data.size(), payload.size());
  EXPECT_TRUE(m.data == payload);
  std::string text(1024 * 1024, 'x');
  ws.send_text(text);
  m = ws.read_message(10s);
  EXPECT_EQ(m.opcode, Opcode::kText);
  EXPECT_TRUE(m.data == text);
}

TEST_F(WebSocketProtocolTest, DefaultLimitIsOneMebibyte) {
  WsClient ws = connect("/echo");
  ws.send_binary(std::string(1024 * 1024 - 6, 'z'));  // with the prefix, exactly 1 MiB back
  EXPECT_EQ(ws.read_message(10s).data.size(), 1024u * 1024u);
  ws.send_binary(std::string(1024 * 1024 + 1, 'z'));
  EXPECT_EQ(ws.wait_close(10s), 1009);
}

TEST_F(WebSocketProtocolTest, OversizedMessageClosesWith1009) {
  WsClient ws = connect("/small");
  ws.send_text(std::string(1024, 'k'));
  EXPECT_EQ(ws.read_message().data.size(), 1024u);
  ws.send_text(std::string(1025, 'k'));
  EXPECT_EQ(ws.wait_close(), 1009);
}

TEST_F(WebSocketProtocolTest, OversizedFragmentedMessageClosesWith1009BeforeItEnds) {
  WsClient ws = connect("/small");
  ws.send_frame(Opcode::kText, std::string(600, 'a'), false);
  ws.send_frame(Opcode::kContinuation, std::string(600, 'b'), false);  // over the limit, no FIN
  EXPECT_EQ(ws.wait_close(), 1009);
}

// A frame whose header announces more than the route's limit is refused on its first bytes: the
// client does not get to send max_message_bytes (or lws' whole read buffer) of it first.
TEST_F(WebSocketProtocolTest, FrameAnnouncedOverTheLimitClosesWith1009AtItsFirstBytes) {
  WsClient ws = connect("/small");
  const std::string frame =
      encode_frame(Opcode::kBinary, std::string(100'000, 'x'), true, random_mask_key());
  ws.tcp().send_all(std::string_view(frame).substr(0, 14 + 500));  // 14: the header, 500 < 1024
  EXPECT_EQ(ws.wait_close(3s), 1009);
}

TEST_F(WebSocketProtocolTest, InvalidUtf8ClosesWith1007) {
  WsClient ws = connect("/echo");
  ws.send_text(std::string("bad \xC3\x28 utf8"));
  EXPECT_EQ(ws.wait_close(), 1007);
}

TEST_F(WebSocketProtocolTest, InvalidUtf8SplitAcrossFragmentsClosesWith1007) {
  WsClient ws = connect("/echo");
  ws.send_frame(Opcode::kText, "ok \xE2\x82", false);  // a valid start of a 3-byte sequence
  ws.send_frame(Opcode::kContinuation, "\x41", true);  // ...broken by a non-continuation byte
  EXPECT_EQ(ws.wait_close(), 1007);
}

TEST_F(WebSocketProtocolTest, UnmaskedClientFrameClosesWith1002) {
  WsClient ws = connect("/echo");
  ws.send_frame(Opcode::kText, "not masked", true, /*mask=*/false);
  EXPECT_EQ(ws.wait_close(), 1002);
}

TEST_F(WebSocketProtocolTest, UnmaskedFrameAfterValidOnesClosesWith1002AfterTheirEchoes) {
  WsClient ws = connect("/raw");
  // Two masked frames and an unmasked one in a single write: the first two are answered.
  std::string burst = encode_frame(Opcode::kText, "one", true, random_mask_key()) +
                      encode_frame(Opcode::kText, "two", true, random_mask_key()) +
                      encode_frame(Opcode::kText, "three", true, std::nullopt);
  ws.tcp().send_all(burst);
  EXPECT_EQ(ws.read_message().data, "one");
  EXPECT_EQ(ws.read_message().data, "two");
  EXPECT_EQ(ws.wait_close(), 1002);
}

TEST_F(WebSocketProtocolTest, FramesPipelinedBehindTheHandshakeAreCheckedToo) {
  auto opts = client("/raw");
  {
    TcpConn tcp = raw_connect(server_->port);
    tcp.send_all(build_handshake_request(opts) +
                 encode_frame(Opcode::kText, "early", true, random_mask_key()));
    EXPECT_EQ(tcp.read_http_response().status, 101);
    WsClient ws = WsClient::adopt(std::move(tcp));
    EXPECT_EQ(ws.read_message().data, "early");
  }
  {
    TcpConn tcp = raw_connect(server_->port);
    tcp.send_all(build_handshake_request(opts) +
                 encode_frame(Opcode::kText, "early and unmasked", true, std::nullopt));
    EXPECT_EQ(tcp.read_http_response().status, 101);
    WsClient ws = WsClient::adopt(std::move(tcp));
    EXPECT_EQ(ws.wait_close(), 1002);
  }
}

TEST_F(WebSocketProtocolTest, KeepAliveRequestsBeforeTheUpgradeDoNotConfuseTheMaskCheck) {
  TcpConn tcp = raw_connect(server_->port);
  tcp.send_all("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_EQ(tcp.read_http_response().status, 200);
  tcp.send_all(build_handshake_request(client("/raw")));
  ASSERT_EQ(tcp.read_http_response().status, 101);
  WsClient ws = WsClient::adopt(std::move(tcp));
  const std::string big(200000, 'q');  // frames spanning many reads keep their boundaries
  for (int i = 0; i < 3; ++i) {
    ws.send_text(big + std::to_string(i));
    EXPECT_EQ(ws.read_message(10s).data, big + std::to_string(i));
  }
}

TEST_F(WebSocketProtocolTest, ReservedOpcodeClosesWith1002) {
  WsClient ws = connect("/echo");
  ws.send_raw_frame(0x83, "reserved opcode 3");
  EXPECT_EQ(ws.wait_close(), 1002);
}

// RFC 6455 5.5, 7.1.5, 7.4 and 8.1: a control frame over 125 bytes, a close frame with a 1-byte
// payload or a code no endpoint may send fail the connection with 1002, and a close reason that
// is not UTF-8 with 1007. Before, lws 4.1.6 dropped the first without a close frame and echoed
// the others back as they came.
TEST_F(WebSocketProtocolTest, MalformedCloseAndOversizedControlFramesAreRefused) {
  struct Case {
    uint8_t first;
    std::string payload;
    uint16_t code;
  };
  const std::vector<Case> cases = {
      {0x89, std::string(126, 'p'), 1002},               // a PING over 125 bytes
      {0x88, std::string(126, 'c'), 1002},               // a close over 125 bytes
      {0x88, "x", 1002},                                 // a 1-byte close payload
      {0x88, std::string("\x13\x88", 2), 1002},          // code 5000
      {0x88, std::string("\x03\xed", 2), 1002},          // 1005: never sent
      {0x88, std::string("\x03\xe8\xff\xfe", 4), 1007},  // 1000 with a reason that is not UTF-8
  };
  for (const Case& c : cases) {
    WsClient ws = connect("/echo");
    ws.send_raw_frame(c.first, c.payload);
    EXPECT_EQ(ws.wait_close(), c.code) << static_cast<int>(c.first) << " " << c.payload.size();
  }
  // A valid close is still answered with its own code.
  WsClient ok = connect("/echo");
  ok.send_raw_frame(0x88, std::string("\x0f\xa0"
                                      "bye \xc3\xa9",
                                      8));  // 4000, "bye é"
  EXPECT_EQ(ok.wait_close(), 4000);
}

TEST_F(WebSocketProtocolTest, UnknownPathIs404BeforeUpgrade) {
  try {
    WsClient::connect(client("/no/such/route"));
    FAIL() << "upgrade accepted";
  } catch (const HandshakeError& e) {
    EXPECT_EQ(e.response().status, 404);
  }
}

TEST_F(WebSocketProtocolTest, WrongVersionIs426WithSupportedVersion) {
  auto opts = client("/echo");
  opts.version = "8";
  try {
    WsClient::connect(opts);
    FAIL() << "upgrade accepted";
  } catch (const HandshakeError& e) {
    EXPECT_EQ(e.response().status, 426);
    EXPECT_EQ(e.response().header("Sec-WebSocket-Version"), "13");
  }
}

TEST_F(WebSocketProtocolTest, MalformedHandshakeIs400) {
  for (const std::string key : {"", "too-short", "dGhlIHNhbXBsZSBub25jZQ"}) {
    auto opts = client("/echo");
    opts.key = key;
    try {
      WsClient::connect(opts);
      ADD_FAILURE() << "upgrade accepted with key '" << key << "'";
    } catch (const HandshakeError& e) {
      EXPECT_EQ(e.response().status, 400) << "key '" << key << "'";
    }
  }
}

TEST_F(WebSocketProtocolTest, GarbageRequestGetsNoUpgradeAndNoCrash) {
  TcpConn conn = raw_connect(server_->port);
  conn.send_all("THIS IS NOT HTTP\r\n\r\n");
  const std::string reply = conn.read_until_close(5s);
  EXPECT_EQ(reply.find("101"), std::string::npos);
  // The server is still there.
  EXPECT_EQ(get(server_->port, "/healthz").status, 200);
}

TEST_F(WebSocketProtocolTest, HealthzReportsVersionAndUptime) {
  HttpResponse r = get(server_->port, "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_NE(r.body.find("\"status\":\"ok\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"version\":\"0."), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"uptime_seconds\":"), std::string::npos) << r.body;
}

TEST_F(WebSocketProtocolTest, ServesStaticFilesAnd404s) {
  HttpResponse index = get(server_->port, "/");
  EXPECT_EQ(index.status, 200);
  EXPECT_NE(index.body.find("static test page"), std::string::npos) << index.body;
  HttpResponse js = get(server_->port, "/app.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_NE(js.header("Content-Type").value_or("").find("javascript"), std::string::npos);
  EXPECT_EQ(get(server_->port, "/missing.html").status, 404);
  // No escape from the static directory.
  HttpResponse escape = get(server_->port, "/../../CMakeLists.txt");
  EXPECT_EQ(escape.body.find("cmake_minimum_required"), std::string::npos);
}

TEST_F(WebSocketProtocolTest, ServerPingsEveryPingInterval) {
  WsClient ws = connect("/lively");
  // Keep answering pings for ~1.5 s (longer than idle_timeout): the connection must stay open.
  const auto until = std::chrono::steady_clock::now() + 1500ms;
  while (std::chrono::steady_clock::now() < until) {
    Frame f = ws.read_frame(1s);
    if (f.opcode == Opcode::kPing) ws.send_frame(Opcode::kPong, f.payload);
  }
  EXPECT_GE(ws.pings_received(), 3);
  ws.send_text("still here");
  EXPECT_EQ(ws.read_message(2s).data, "still here");
}

TEST_F(WebSocketProtocolTest, SilentPeerIsClosedAfterIdleTimeout) {
  WsClient ws = connect("/lively");
  ws.set_auto_pong(false);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ws.wait_close(5s), 1001);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 1000ms);
  EXPECT_LE(waited, 3000ms);
}

TEST_F(WebSocketProtocolTest, PermessageDeflateIsNegotiatedWhereConfigured) {
  auto plain = client("/echo");
  plain.offer_deflate = true;
  WsClient off = WsClient::connect(plain);
  EXPECT_FALSE(off.deflate_negotiated());

  auto opts = client("/raw");
  opts.port = server_->port2;
  opts.offer_deflate = true;
  WsClient on = WsClient::connect(opts);
  ASSERT_TRUE(on.deflate_negotiated());
  const std::string text(200000, 'a');  // compresses well: the server must inflate and deflate
  on.send_text(text);
  auto m = on.read_message(10s);
  EXPECT_EQ(m.opcode, Opcode::kText);
  EXPECT_TRUE(m.data == text);
  const std::string noise = random_bytes(300000, 3);  // does not compress: many output chunks
  on.send_binary(noise);
  on.send_text("after");
  m = on.read_message(10s);
  EXPECT_EQ(m.opcode, Opcode::kBinary);
  EXPECT_TRUE(m.data == noise);
  EXPECT_EQ(on.read_message(5s).data, "after");
}

TEST_F(WebSocketProtocolTest, DeflateBombIsStoppedAtTheLimit) {
  auto opts = client("/small");
  opts.port = server_->port2;
  opts.offer_deflate = true;
  WsClient ws = WsClient::connect(opts);
  ASSERT_TRUE(ws.deflate_negotiated());
  ws.send_text(std::string(10 * 1024 * 1024, 'b'));  // ~10 KB on the wire, 10 MiB inflated
  EXPECT_EQ(ws.wait_close(10s), 1009);
}

TEST_F(WebSocketProtocolTest, ManyConcurrentClientsEachGetTheirOwnEcho) {
  std::vector<WsClient> clients;
  for (int i = 0; i < 50; ++i) clients.push_back(connect("/echo"));
  for (int i = 0; i < 50; ++i) clients[i].send_text("client " + std::to_string(i));
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(clients[i].read_message().data, "Echo: client " + std::to_string(i));
  }
}

bool ipv6_loopback_available() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

TEST(ListenerTest, ServesIpv4AndIpv6ListenersSideBySide) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "no IPv6 loopback on this machine";
  WsbridgeInstance server(R"(
[[listeners]]
address = "127.0.0.1"
port = ${PORT}
)" + tls_if_on() + R"(
[[listeners]]
address = "::1"
port = ${PORT2}
)" + tls_if_on() + R"(
[[routes]]
path = "/echo"
adapter = "echo"
prefix = "v: "
)");
  ASSERT_TRUE(wait_port_open("::1", server.port2, 5s));
  auto v6 = server.client("/echo");
  v6.host = "::1";
  v6.port = server.port2;
  v6.tls = client_tls();
  if (v6.tls) v6.tls->verify_name = false;  // the test certificate names 127.0.0.1, not ::1
  WsClient ws6 = WsClient::connect(v6);
  ws6.send_text("six");
  EXPECT_EQ(ws6.read_message().data, "v: six");
  auto v4 = server.client("/echo");
  v4.tls = client_tls();
  WsClient ws4 = WsClient::connect(v4);
  ws4.send_text("four");
  EXPECT_EQ(ws4.read_message().data, "v: four");
  EXPECT_TRUE(server.process->wait_for_output("listening on " + kScheme + "[::1]:", 1s));
  // Each listener is bound to its own address only.
  EXPECT_EQ(server.process->output().find("listening on " + kScheme +
                                          "127.0.0.1:" + std::to_string(server.port2)),
            std::string::npos);
}

}  // namespace
}  // namespace wsbridge::testing
