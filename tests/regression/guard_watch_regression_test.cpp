// Regression tests: the recv() guard (recv_hook/mask_guard.hpp) follows each socket a shard
// accepted, by descriptor number, until lws lets it go. lws names the socket only while it is
// open, and the end of a connection whose upgrade was refused (401) was not told while it was:
// the guard kept following "it". The next socket given that number on the shard, a connection to
// a broker or a backend, had the server's answers read as a client's pipelined requests: a
// CONNACK or an HTTP status line was "a pipelined request with a malformed request head", and
// the connection was cut (CI saw mqtt.js refused with "Server unavailable").
//
// Each test leaves two such connections behind on a one-thread server: the next connection
// accepted takes the lower number, the outgoing socket the connection opens takes the other.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "integration/http_test_config.hpp"
#include "integration/wsbridge_instance.hpp"
#include "passthrough/mqtt_packets.hpp"
#include "support/eventually.hpp"
#include "support/mosquitto.hpp"
#include "support/process.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace wire = wsbridge::mqtt::wire;

std::string config(const HttpBackend& backend, const Mosquitto& broker) {
  return with_backend(R"(
[server]
threads = 1
[jwt.main]
secret_env = "WSBRIDGE_TEST_JWT_SECRET"
[[listeners]]
port = ${PORT}
permessage_deflate = false
[upstreams.broker]
uri = ")" + broker.uri() + R"("

[[routes]]
path = "/private"
adapter = "echo"
[routes.auth]
jwt = "main"

[[routes]]
path = "/rpc"
adapter = "http"
mode = "rpc"
backend = "${BACKEND}"
paths = ["/json"]

[[routes]]
path = "/mqtt"
adapter = "mqtt"
mode = "passthrough"
upstream = "broker"
allow_subscribe = ["#"]
allow_publish = ["#"]
)",
                      backend);
}

class GuardWatchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("WSBRIDGE_TEST_JWT_SECRET", "an-hmac-secret-of-at-least-32-bytes!", 1);
  }

  // Two connections whose upgrade lws refuses (401), closed by their clients; returns once the
  // server has closed both sockets.
  void leave_refused_connections() {
    const int pid = server_.process->pid();
    const int before = settled_descriptors(pid);
    ASSERT_GE(before, 0);
    {
      std::vector<TcpConn> refused;
      for (int i = 0; i < 2; ++i) {
        refused.push_back(TcpConn::connect("127.0.0.1", server_.port));
        refused.back().send_all(
            "GET /private HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
      }
      for (TcpConn& c : refused) ASSERT_EQ(c.read_http_response(5s).status, 401);
    }
    ASSERT_TRUE(eventually([&] { return open_descriptors(pid) <= before; }, 10s))
        << "the refused connections stayed open";
  }

  HttpBackend backend_;
  Mosquitto broker_;
  WsbridgeInstance server_{config(backend_, broker_)};
};

TEST_F(GuardWatchTest, BrokerConnectionAfterRefusedUpgradesGetsItsConnack) {
  leave_refused_connections();
  ClientOptions opts = server_.client("/mqtt");
  opts.extra_headers = {{"Sec-WebSocket-Protocol", "mqtt"}};
  WsClient ws = WsClient::connect(opts);
  wire::ConnectPacket connect;
  connect.version = wire::kMqtt311;
  connect.client_id = "after-refusals";
  connect.keepalive = 30;
  ws.send_binary(wire::encode_connect(connect));
  const WsClient::Message m = ws.read_message(5s);
  ASSERT_EQ(m.opcode, Opcode::kBinary) << m.close_code() << " " << m.close_reason();
  std::string error;
  const auto connack = wire::parse_connack(m.data, wire::kMqtt311, error);
  ASSERT_TRUE(connack) << error;
  EXPECT_EQ(connack->code, 0);
}

TEST_F(GuardWatchTest, BackendRequestAfterRefusedUpgradesGetsItsResponse) {
  leave_refused_connections();
  WsClient ws = WsClient::connect(server_.client("/rpc"));
  ws.send_text(R"({"type":"request","id":1,"method":"GET","path":"/json/a"})");
  const WsClient::Message m = ws.read_message(5s);
  ASSERT_EQ(m.opcode, Opcode::kText) << m.close_code() << " " << m.close_reason();
  const json r = json::parse(m.data);
  EXPECT_EQ(r["type"], "response") << r.dump();
  EXPECT_EQ(r["status"], 200) << r.dump();
}

}  // namespace
}  // namespace wsbridge::testing
