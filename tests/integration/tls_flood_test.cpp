// #15.8: a TLS handshake flood and a slowloris on the TLS port are bounded by the handshake
// timeout (2 s here) and the limits: every attacking connection is closed by the server in time,
// a good client is served meanwhile, and afterwards the server holds no more sockets than before.
#include <gtest/gtest.h>

#include <thread>

#include "support/eventually.hpp"
#include "support/prometheus.hpp"
#include "support/tls_config.hpp"
#include "wsbridge_instance.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The first bytes of a TLS 1.2 ClientHello record that announces 512 bytes and never sends them.
std::string half_client_hello() {
  std::string hello = {0x16, 0x03, 0x01, 0x02,
                       0x00,  // handshake record, 512 bytes
                       0x01, 0x00, 0x01, static_cast<char>(0xfc),
                       0x03, 0x03};
  hello += std::string(32, 'r');  // client random, then nothing
  return hello;
}

class TlsFlood : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.emplace(R"(
[limits]
handshake_timeout = "2s"
max_connections = 50
max_connections_per_ip = 50
# The attackers and the good client share 127.0.0.1 here: this test is about the handshake
# timeout (the per-address cap on connections has its own test, TlsHttpCap below).
max_http_connections_per_ip = 1000
[admin]
address = "127.0.0.1"
port = ${PORT2}
[[listeners]]
address = "127.0.0.1"
port = ${PORT}
)" + tls_table(TestPki::get().server) +
                    R"(
[[routes]]
path = "/echo"
adapter = "echo"
)");
  }
  ClientOptions good() const {
    ClientOptions opts = server_->client("/echo");
    opts.tls = trust_test_ca();
    return opts;
  }
  // A good client's whole round trip, TLS handshake to echo.
  void expect_served(const std::string& what) {
    WsClient ws = WsClient::connect(good());
    ws.send_text(what);
    EXPECT_EQ(ws.read_message(3s).data, what);
  }
  std::optional<WsbridgeInstance> server_;
};

TEST_F(TlsFlood, HandshakeFloodAndSlowlorisAreClosedByTheHandshakeTimeout) {
  expect_served("before");
  std::this_thread::sleep_for(200ms);
  const int baseline = open_descriptors(server_->process->pid());
  ASSERT_GT(baseline, 0);

  std::vector<TcpConn> attackers;
  for (int i = 0; i < 100; ++i) {  // TCP connects that never say anything
    attackers.push_back(TcpConn::connect("127.0.0.1", server_->port));
  }
  for (int i = 0; i < 100; ++i) {  // half a ClientHello each
    attackers.push_back(TcpConn::connect("127.0.0.1", server_->port));
    attackers.back().send_all(half_client_hello());
  }
  // Plaintext HTTP on the TLS port: answered 400 and closed (plain_http_answer.hpp).
  for (int i = 0; i < 20; ++i) {
    attackers.push_back(TcpConn::connect("127.0.0.1", server_->port));
    attackers.back().send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  // TLS 1.1 ClientHellos: refused with an alert, each a failed handshake.
  TlsOptions old = trust_test_ca();
  old.min_version = old.max_version = 0x0302;  // TLS1_1_VERSION
  for (int i = 0; i < 20; ++i) {
    EXPECT_THROW(TcpConn::connect("127.0.0.1", server_->port, old), TlsError);
  }
  // Slowloris after a complete TLS handshake: a request head dripped a byte every 300 ms.
  std::vector<TcpConn> slow;
  for (int i = 0; i < 10; ++i) {
    slow.push_back(TcpConn::connect("127.0.0.1", server_->port, trust_test_ca()));
  }
  const auto start = Clock::now();
  // Served while 230 connections hang: the limits (50) count upgrades, not handshakes.
  expect_served("during");

  const std::string request = build_handshake_request(good());
  std::vector<bool> slow_closed(slow.size(), false);
  for (std::size_t byte = 0; byte < request.size() && Clock::now() - start < 6s; ++byte) {
    for (std::size_t i = 0; i < slow.size(); ++i) {
      if (slow_closed[i]) continue;
      try {
        slow[i].send_all(request.substr(byte, 1), 500ms);
      } catch (const std::exception&) {
        slow_closed[i] = true;  // the server hung up on it
      }
      if (!slow_closed[i] && slow[i].wait_closed(1ms)) slow_closed[i] = true;
    }
    if (std::all_of(slow_closed.begin(), slow_closed.end(), [](bool c) { return c; })) break;
    std::this_thread::sleep_for(300ms);
  }
  for (std::size_t i = 0; i < slow.size(); ++i) {
    EXPECT_TRUE(slow_closed[i] || slow[i].wait_closed(100ms)) << "slowloris " << i << " open";
  }
  // Every attacker is closed by the server, about handshake_timeout after it connected.
  int still_open = 0;
  for (auto& a : attackers) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(start + 4500ms - Clock::now());
    if (!a.wait_closed(std::max(left, 1ms))) ++still_open;
  }
  EXPECT_EQ(still_open, 0) << "of 220 flooding connections";
  EXPECT_LT(Clock::now() - start, 7s);

  expect_served("after");
  // Nothing held for them any more (a little slack for the admin and log descriptors).
  attackers.clear();
  slow.clear();
  std::this_thread::sleep_for(300ms);
  EXPECT_LE(open_descriptors(server_->process->pid()), baseline + 3);
  const HttpResponse m = http_get("127.0.0.1", server_->port2, "/metrics");
  const auto failed = sample(m.body, "wsbridge_tls_handshakes_total{result=\"failed\"}");
  ASSERT_TRUE(failed) << m.body.substr(0, 2000);
  // At least the TLS 1.1 attempts and the plaintext requests. (Handshakes that never finish,
  // dropped by the timeout, are not counted as failed: the server counts fatal alerts and
  // plaintext requests.)
  EXPECT_GE(*failed, 40);
  EXPECT_GE(sample(m.body, "wsbridge_tls_handshakes_total{result=\"ok\"}").value_or(0), 13);
}

// A TLS listener with an echo route, and at most `cap` connections per address without a WebSocket.
std::string tls_echo_server_capped_at(int cap) {
  return "[limits]\nmax_http_connections_per_ip = " + std::to_string(cap) +
         "\n[[listeners]]\naddress = \"127.0.0.1\"\nport = ${PORT}\n" +
         tls_table(TestPki::get().server) + "\n[[routes]]\npath = \"/echo\"\nadapter = \"echo\"\n";
}

// [limits] max_http_connections_per_ip on a TLS listener: a connection is counted, and refused
// past the cap, as it is accepted: before lws reads its ClientHello, so a refused one costs no
// TLS handshake (its ClientHello, sent before the accept, gets no answer but the close).
TEST(TlsHttpCap, TlsConnectionsAreRefusedBeforeTheirHandshake) {
  WsbridgeInstance server(tls_echo_server_capped_at(3));
  // (Accepted once the server holds their sockets: under load a fixed pause was not enough. And
  // counted from when the server let go of the start-up check's connection, which a loaded run
  // saw still counted when these came.)
  const int before = settled_descriptors(server.process->pid());
  ASSERT_GE(before, 0);
  std::vector<TcpConn> silent;
  for (int i = 0; i < 3; ++i) silent.push_back(TcpConn::connect("127.0.0.1", server.port));
  ASSERT_TRUE(
      eventually([&] { return open_descriptors(server.process->pid()) >= before + 3; }, 10s));
  for (int i = 0; i < 5; ++i) {
    EXPECT_THROW(TcpConn::connect("127.0.0.1", server.port, trust_test_ca()), TlsError);
  }
  for (TcpConn& c : silent) EXPECT_FALSE(c.wait_closed(10ms)) << "a counted one was closed";
  silent.pop_back();
  ASSERT_TRUE(
      eventually([&] { return open_descriptors(server.process->pid()) <= before + 2; }, 10s));
  ClientOptions opts = server.client("/echo");
  opts.tls = trust_test_ca();
  WsClient ws = WsClient::connect(opts);
  ws.send_text("served");
  EXPECT_EQ(ws.read_message().data, "served");
}

// A connection whose TLS handshake fails while lws adopts it (its bytes, no TLS, and its FIN were
// already there at the accept) is destroyed before it is ever instantiated: the place it took under
// max_http_connections_per_ip at the accept must come back then, not at the next accept on the
// same service thread. (With two threads a place left on one refused the next client landing on
// the other: the start-up check's own connection did it to the test above now and then.)
TEST(TlsHttpCap, AHandshakeThatFailsAsTheConnectionIsAdoptedGivesItsPlaceBack) {
  WsbridgeInstance server(tls_echo_server_capped_at(1));
  // Enough of them that both service threads' last accept, w.h.p., was one of these.
  for (int i = 0; i < 16; ++i) {
    TcpConn c = TcpConn::connect("127.0.0.1", server.port);
    c.send_all("no TLS here\r\n\r\n");
  }  // (closed as it goes out of scope, usually before the server accepts it)
  ASSERT_GE(settled_descriptors(server.process->pid()), 0);
  for (int i = 0; i < 6; ++i) {
    ClientOptions opts = server.client("/echo");
    opts.tls = trust_test_ca();
    WsClient ws = WsClient::connect(opts);
    ws.send_text("served " + std::to_string(i));
    EXPECT_EQ(ws.read_message().data, "served " + std::to_string(i));
  }
}

}  // namespace
}  // namespace wsbridge::testing
