// #15.2: what the server does by reading the plaintext socket itself (the bearer.<token>
// subprotocol taken out of the request head, the 431 on an oversize head, the handshake timeout,
// the connection limits, the upgrade held for an on_connect hook, the shared permessage-deflate
// that sets RSV1 on the wire) holds on a TLS listener as on a plain one: each case runs over
// ws:// and over wss:// (the rest of the RFC 6455 cases: tls_websocket_protocol_tests).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/http_backend.hpp"
#include "support/jwt_sign.hpp"
#include "support/tls_config.hpp"
#include "wsbridge_instance.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const std::string kSecret = "an-hmac-secret-of-at-least-32-bytes!";

std::string token(const std::string& sub, std::size_t pad = 0) {
  json claims = {{"sub", sub}, {"exp", unix_now() + 300}};
  if (pad > 0) claims["pad"] = std::string(pad, 'p');
  return sign_hs256(claims, kSecret);
}

enum class Scheme { kWs, kWss };

class OverTls : public ::testing::TestWithParam<Scheme> {
 protected:
  static bool tls() { return GetParam() == Scheme::kWss; }
  // One listener on ${PORT}, with the test certificate over wss://; `limits` go into [limits].
  void start(const std::string& limits, const std::string& routes = "") {
    setenv("WSBRIDGE_TEST_JWT_SECRET", kSecret.c_str(), 1);
    server_.emplace("[limits]\n" + limits + R"(
[jwt.main]
secret_env = "WSBRIDGE_TEST_JWT_SECRET"
[[listeners]]
address = "127.0.0.1"
port = ${PORT}
)" + (tls() ? tls_table(TestPki::get().server) : "") +
                    R"(
[[routes]]
path = "/echo"
adapter = "echo"
[[routes]]
path = "/private"
adapter = "echo"
subprotocols = ["chat.v1"]
[routes.auth]
jwt = "main"
)" + routes);
  }
  ClientOptions client(const std::string& path) const {
    ClientOptions opts = server_->client(path);
    if (tls()) opts.tls = trust_test_ca();
    return opts;
  }
  TcpConn raw() const {
    return TcpConn::connect("127.0.0.1", server_->port,
                            tls() ? std::optional(trust_test_ca()) : std::nullopt);
  }
  std::optional<HttpResponse> refusal(const ClientOptions& opts) const {
    try {
      WsClient::connect(opts);
      return std::nullopt;
    } catch (const HandshakeError& e) {
      return e.response();
    }
  }
  std::optional<WsbridgeInstance> server_;
};

TEST_P(OverTls, BearerSubprotocolIsTakenOutOfTheHead) {
  start("");
  const std::string t = token("alice");
  auto opts = client("/private");
  opts.extra_headers.emplace_back("Sec-WebSocket-Protocol", "bearer." + t + ", chat.v1");
  WsClient ws = WsClient::connect(opts);
  EXPECT_EQ(ws.handshake_response().header("Sec-WebSocket-Protocol"), "chat.v1");
  ws.send_text("s");
  EXPECT_EQ(ws.read_message().data, "s");
  ASSERT_TRUE(server_->process->wait_for_output("user=alice", 2s));
  EXPECT_EQ(server_->process->output().find(t), std::string::npos);
  // Without a token the route refuses: the 101 above came from the token, not an open door.
  auto anonymous = refusal(client("/private"));
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
}

TEST_P(OverTls, OversizeHeadIs431) {
  start("");
  auto opts = client("/private");
  opts.extra_headers.emplace_back("Authorization", "Bearer " + token("alice", 15 * 1024));
  TcpConn tcp = raw();
  tcp.send_all(build_handshake_request(opts));
  EXPECT_EQ(tcp.read_http_response().status, 431);
  EXPECT_TRUE(tcp.wait_closed(5s));
  auto health = client("/healthz");
  EXPECT_EQ(http_get(health).status, 200);  // and it goes on serving
}

// Pipelined requests with bodies (lws 4.1.6 spun forever on one it found in its own buffer) and
// after them a GET: each answered in order, whatever TLS record they came in, and no thread spins.
TEST_P(OverTls, PipelinedRequestsWithBodiesAreAllServed) {
  start("");
  const std::string post = "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n1\n";
  const std::string get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  TcpConn conn = raw();
  conn.send_all(get + post + post + "\r\n" + get + post + get);
  for (int status : {200, 405, 405, 200, 405, 200}) {
    EXPECT_EQ(conn.read_http_response(3s).status, status);
  }
  const long before = cpu_ticks(server_->process->pid());
  std::this_thread::sleep_for(1s);
  EXPECT_LT(cpu_ticks(server_->process->pid()) - before, 40) << "a service thread spins";
}

// Requests pipelined behind a static file, which lws sends and completes by itself: over TLS
// the next request waited decrypted in OpenSSL's buffer, where no POLLIN told of it, and was
// never answered (the connection dropped at the handshake timeout).
TEST_P(OverTls, PipelinedRequestsBehindAStaticFileAreServed) {
  char dir_template[] = "/tmp/wsbridge-static-XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  { std::ofstream(dir + "/index.html") << "<p>static</p>\n"; }
  start("", "[server]\nstatic_dir = \"" + dir + "\"\n");
  const std::string file = "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string head = "HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string health = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string missing = "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n";
  // (A HEAD of a static file lws completes without a callback: the timer finds the next request,
  // within a second.)
  const std::vector<std::vector<std::string>> sequences = {
      {head, file}, {health, file, health}, {missing, file, health}, {file, health, head, file}};
  for (const auto& sequence : sequences) {
    TcpConn conn = raw();
    std::string all;
    for (const auto& request : sequence) all += request;
    conn.send_all(all);
    for (const auto& request : sequence) {
      SCOPED_TRACE(request.substr(0, request.find('\r')));
      if (request == head) {
        // A HEAD answer is a head alone (read_http_response would read a body for its length).
        const auto deadline = std::chrono::steady_clock::now() + 4s;
        std::size_t end_of_head;
        while ((end_of_head = conn.buffer().find("\r\n\r\n")) == std::string::npos &&
               conn.read_some(deadline) == TcpConn::ReadStatus::kData) {
        }
        ASSERT_NE(end_of_head, std::string::npos) << conn.buffer();
        EXPECT_TRUE(conn.buffer().starts_with("HTTP/1.1 200 ")) << conn.buffer();
        conn.buffer().erase(0, end_of_head + 4);
        continue;
      }
      const HttpResponse r = conn.read_http_response(4s);
      EXPECT_EQ(r.status, request == missing ? 404 : 200);
      if (request == file) {
        EXPECT_EQ(r.body, "<p>static</p>\n");
      }
    }
  }
  std::filesystem::remove_all(dir);
}

TEST_P(OverTls, HandshakeTimeoutDropsAnUnfinishedRequest) {
  start("handshake_timeout = \"2s\"");
  TcpConn slow = raw();  // over wss://: TLS done, the HTTP request never finished
  slow.send_all("GET /healthz HTTP/1.1\r\nHost: x\r\n");
  const auto begin = std::chrono::steady_clock::now();
  EXPECT_TRUE(slow.wait_closed(6s));
  const auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_GE(took, 1500ms);
  EXPECT_LT(took, 4500ms);
}

TEST_P(OverTls, ConnectionLimitIs503) {
  start("max_connections = 3");
  std::vector<WsClient> held;
  for (int i = 0; i < 3; ++i) held.push_back(WsClient::connect(client("/echo")));
  auto r = refusal(client("/echo"));
  ASSERT_TRUE(r) << "a fourth connection was accepted";
  EXPECT_EQ(r->status, 503);
  held.pop_back();
  // The place comes back once the server has seen the close.
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  for (;;) {
    try {
      held.push_back(WsClient::connect(client("/echo")));
      break;
    } catch (const HandshakeError& e) {
      ASSERT_EQ(e.response().status, 503);
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the place never came back";
      std::this_thread::sleep_for(50ms);
    }
  }
  const auto again = refusal(client("/echo"));  // and the limit holds again
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 503);
}

TEST_P(OverTls, UpgradeHeldForOnConnectHook) {
  HttpBackend backend;
  start("", "[[routes]]\npath = \"/hooked\"\nadapter = \"http\"\nbackend = \"" +
                backend.base_url() + "/echo\"\non_connect = \"" + backend.base_url() +
                "/hook/connect\"\n");
  backend.configure({{"connect_delay_ms", 700}});
  const auto begin = std::chrono::steady_clock::now();
  WsClient ws = WsClient::connect(client("/hooked"));
  EXPECT_GE(std::chrono::steady_clock::now() - begin, 600ms);
  backend.configure({{"connect_status", 403}, {"connect_delay_ms", 0}});
  auto r = refusal(client("/hooked"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
}

// The shared compression (the listener default) sets RSV1 itself on frames it wrote compressed:
// read raw frames to see the bit on the wire, and inflate them.
TEST_P(OverTls, SharedDeflateSetsRsv1BothWays) {
  start("");
  auto opts = client("/echo");
  opts.offer_deflate = true;
  WsClient ws = WsClient::connect(opts);
  ASSERT_TRUE(ws.deflate_negotiated());
  const std::string text(4000, 'z');
  ws.send_text(text);  // compressed by the client (RSV1 set)
  Frame f = ws.read_frame();
  EXPECT_TRUE(f.rsv1);
  EXPECT_LT(f.payload.size(), 200u);
  Inflater inflater;
  EXPECT_EQ(inflater.decompress(f.payload), text);
  ws.send_text("short", false);  // below the threshold: back uncompressed
  f = ws.read_frame();
  EXPECT_FALSE(f.rsv1);
  EXPECT_EQ(f.payload, "short");
}

INSTANTIATE_TEST_SUITE_P(Schemes, OverTls, ::testing::Values(Scheme::kWs, Scheme::kWss),
                         [](const auto& p) {
                           return std::string(p.param == Scheme::kWss ? "wss" : "ws");
                         });

}  // namespace
}  // namespace wsbridge::testing
