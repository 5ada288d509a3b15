// Regression tests for [limits] max_http_connections_per_ip. Before it only WebSocket sessions
// were counted per address: one address could open TCP connections that never upgrade (idle ones,
// renewed every handshake timeout, or keep-alive ones sending a request now and then) until the
// process ran out of descriptors, and from then on every client was refused at accept.
#include <gtest/gtest.h>

#include <thread>

#include "integration/wsbridge_instance.hpp"
#include "support/eventually.hpp"
#include "support/http_backend.hpp"
#include "support/prometheus.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kHealthz = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

std::string config_with(const std::string& extra) {
  return R"(
[server]
)" + extra +
         R"(
[admin]
port = ${PORT2}
token_env = "WSBRIDGE_TEST_ADMIN_TOKEN"
[limits]
max_http_connections_per_ip = 3
[[listeners]]
port = ${PORT}
[[routes]]
path = "/echo"
adapter = "echo"
)";
}

// config_with(""), plus the reverse proxy relaying /json to `backend`.
std::string config_proxying_json_to(const HttpBackend& backend) {
  std::string config = config_with("") + R"(
[[proxy]]
path = "/json"
backend = "${BACKEND}"
)";
  WsbridgeInstance::replace_all(config, "${BACKEND}", backend.base_url());
  return config;
}

double refused(const WsbridgeInstance& server) {
  return admin_metric(server.port2,
                      "wsbridge_connections_refused_total{reason=\"max_http_connections_per_ip\"}")
      .value_or(0);
}

// A keep-alive request on `c`: true when it was answered 200 (the connection is served).
bool served(TcpConn& c) {
  c.send_all(kHealthz);
  return c.read_http_response(5s).status == 200;
}

class HttpConnectionCap : public ::testing::Test {
 protected:
  void SetUp() override { setenv("WSBRIDGE_TEST_ADMIN_TOKEN", "admin-secret", 1); }
};

TEST_F(HttpConnectionCap, ConnectionsWithoutAWebSocketAreCappedPerAddress) {
  WsbridgeInstance server(config_with(""));
  // WebSockets are not counted here (max_connections_per_ip counts them).
  std::vector<WsClient> sockets;
  for (int i = 0; i < 4; ++i) sockets.push_back(WsClient::connect(server.client("/echo")));
  // Each leaves this count when its service thread has set it up, a moment after its 101 (a
  // slow TSan run saw the last one still counted while the plain connections came): an echo
  // on each says that moment has passed.
  for (WsClient& ws : sockets) {
    ws.send_text("set up");
    ASSERT_EQ(ws.read_message().data, "set up");
  }
  const int pid = server.process->pid();
  // (And the start-up check's connection let go of: a loaded run saw it still counted.)
  const int before = settled_descriptors(pid);
  ASSERT_GE(before, 0);
  std::vector<TcpConn> idle;
  for (int i = 0; i < 3; ++i) idle.push_back(TcpConn::connect("127.0.0.1", server.port));
  // (Accepted once the server holds their sockets.)
  ASSERT_TRUE(eventually([&] { return open_descriptors(pid) >= before + 3; }, 10s));

  TcpConn fourth = TcpConn::connect("127.0.0.1", server.port);
  EXPECT_TRUE(fourth.wait_closed(5s)) << "a fourth connection without a WebSocket was kept";
  EXPECT_GE(refused(server), 1);
  for (TcpConn& c : idle) EXPECT_TRUE(served(c));

  // A connection that goes gives its place back; one that upgrades does too: the new WebSocket
  // takes the third place until its 101, and the plain connection after it gets it.
  idle.pop_back();
  ASSERT_TRUE(eventually([&] { return open_descriptors(pid) <= before + 2; }, 10s));
  sockets.push_back(WsClient::connect(server.client("/echo")));
  sockets.back().send_text("still here");
  EXPECT_EQ(sockets.back().read_message().data, "still here");
  TcpConn next = TcpConn::connect("127.0.0.1", server.port);
  EXPECT_TRUE(served(next)) << "the upgraded connection kept its place";
  for (WsClient& ws : sockets) {
    ws.send_text("ping");
    EXPECT_EQ(ws.read_message().data, "ping");
  }
}

TEST_F(HttpConnectionCap, TrustedProxiesAreNotCounted) {
  WsbridgeInstance server(config_with(R"(trusted_proxies = ["127.0.0.1"])"));
  std::vector<TcpConn> idle;
  for (int i = 0; i < 6; ++i) idle.push_back(TcpConn::connect("127.0.0.1", server.port));
  for (TcpConn& c : idle) EXPECT_TRUE(served(c));
  EXPECT_EQ(refused(server), 0);
}

// A proxied connection between two requests was kept 60 s whatever handshake_timeout said
// (CONFIG.md: it bounds each further keep-alive request too), so an address could hold its
// places twelve times as long as on wsbridge's own paths.
TEST_F(HttpConnectionCap, ProxiedKeepAliveConnectionsCloseAtTheHandshakeTimeout) {
  HttpBackend backend;
  std::string config = config_proxying_json_to(backend);
  WsbridgeInstance::replace_all(config, "max_http_connections_per_ip = 3",
                                "max_http_connections_per_ip = 3\nhandshake_timeout = \"1s\"");
  WsbridgeInstance server(config);
  TcpConn c = TcpConn::connect("127.0.0.1", server.port);
  c.send_all("GET /json/a HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(c.read_http_response(5s).status, 200);
  EXPECT_TRUE(c.wait_closed(5s)) << "an idle proxied connection outlived handshake_timeout";
}

// The twin in the reverse proxy: a connection it takes from lws keeps its place while the proxy
// serves it (keep-alive), instead of leaving the count when it leaves lws.
TEST_F(HttpConnectionCap, ProxiedConnectionsStayCounted) {
  HttpBackend backend;
  WsbridgeInstance server(config_proxying_json_to(backend));
  ASSERT_GE(settled_descriptors(server.process->pid()), 0);  // (the start-up check's connection)
  std::vector<TcpConn> proxied;
  for (int i = 0; i < 3; ++i) {
    proxied.push_back(TcpConn::connect("127.0.0.1", server.port));
    proxied.back().send_all("GET /json/a HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(proxied.back().read_http_response(5s).status, 200);
  }
  TcpConn fourth = TcpConn::connect("127.0.0.1", server.port);
  EXPECT_TRUE(fourth.wait_closed(5s)) << "connections served by the proxy were not counted";
  // They are still served, and a place comes back when one goes.
  for (TcpConn& c : proxied) {
    c.send_all("GET /json/b HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_EQ(c.read_http_response(5s).status, 200);
  }
  const int serving = open_descriptors(server.process->pid());
  proxied.pop_back();
  ASSERT_TRUE(eventually([&] { return open_descriptors(server.process->pid()) < serving; }, 10s));
  TcpConn next = TcpConn::connect("127.0.0.1", server.port);
  next.send_all("GET /json/c HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(next.read_http_response(5s).status, 200);
}

}  // namespace
}  // namespace wsbridge::testing
