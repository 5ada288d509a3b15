// [server] trusted_proxies against a real wsbridge process: behind a trusted balancer the client
// is the address X-Forwarded-For names (the rightmost one not itself trusted), for the
// per-address limit, the admin API and fallback sessions alike; from anyone else the header is
// ignored, so a client cannot pick its own address.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "integration/http_test_config.hpp"
#include "integration/wsbridge_instance.hpp"
#include "support/eventually.hpp"

namespace wsbridge::testing {
namespace {

using json = nlohmann::json;

std::string config(const std::string& trusted, const std::string& limits = "") {
  return "[server]\n" + trusted + R"(
[limits]
max_connections_per_ip = 1
)" + limits +
         R"(
[[listeners]]
address = "127.0.0.1"
port = ${PORT}
[admin]
port = ${PORT2}
token_env = "WSBRIDGE_TEST_PUSH_TOKEN"
[[routes]]
path = "/e"
adapter = "echo"
)";
}

int upgrade_status(WsbridgeInstance& server, const std::string& forwarded_for) {
  ClientOptions o = server.client("/e");
  o.extra_headers.emplace_back("X-Forwarded-For", forwarded_for);
  try {
    WsClient ws = WsClient::connect(o);
    return 101;
  } catch (const HandshakeError& e) {
    return e.response().status;
  }
}

WsClient connect_as(WsbridgeInstance& server, const std::string& forwarded_for) {
  ClientOptions o = server.client("/e");
  o.extra_headers.emplace_back("X-Forwarded-For", forwarded_for);
  return WsClient::connect(o);
}

// Open on the server once echoed.
void confirm_open(WsClient& ws) {
  ws.send_text("hi");
  EXPECT_EQ(ws.read_message().data, "hi");
}

class TrustedProxyTest : public ::testing::Test {
 protected:
  void SetUp() override { setenv("WSBRIDGE_TEST_PUSH_TOKEN", kAdminToken.c_str(), 1); }
  static std::multiset<std::string> remote_addresses(WsbridgeInstance& server) {
    HttpResult list = http_request(server.port2, "GET", "/api/v1/connections", "",
                                   {{"Authorization", "Bearer " + kAdminToken}});
    EXPECT_EQ(list.status, 200) << list.body;
    std::multiset<std::string> out;
    const json body = json::parse(list.body);  // (kept: the loop reads into it)
    for (const auto& c : body["connections"]) out.insert(c["remote_address"].get<std::string>());
    return out;
  }
};

TEST_F(TrustedProxyTest, BehindATrustedProxyTheForwardedClientCounts) {
  WsbridgeInstance server(config("trusted_proxies = [\"127.0.0.0/8\", \"10.0.0.0/8\"]"));
  WsClient a = connect_as(server, "203.0.113.7");
  // The rightmost untrusted address: what the client itself wrote on the left is not believed.
  WsClient b = connect_as(server, "203.0.113.7, 198.51.100.2");
  // Trusted hops are skipped.
  WsClient c = connect_as(server, "192.0.2.1, 10.1.2.3");
  for (WsClient* ws : {&a, &b, &c}) confirm_open(*ws);
  EXPECT_EQ(remote_addresses(server),
            (std::multiset<std::string>{"203.0.113.7", "198.51.100.2", "192.0.2.1"}));
  // One per address: the limit counts clients, not the balancer.
  EXPECT_EQ(upgrade_status(server, "203.0.113.7"), 503);
  EXPECT_EQ(upgrade_status(server, "8.8.8.8, 198.51.100.2"), 503);
  EXPECT_EQ(upgrade_status(server, "203.0.113.7:51234"), 503) << "with its port, the same client";
  // A fallback session from the same client counts the same way.
  HttpResult poll = http_request(server.port, "GET", "/_wsbridge/poll/e", "",
                                 {{"X-Forwarded-For", "203.0.113.7"}});
  EXPECT_EQ(poll.status, 503) << poll.body;
  poll = http_request(server.port, "GET", "/_wsbridge/poll/e", "",
                      {{"X-Forwarded-For", "203.0.113.99"}});
  EXPECT_EQ(poll.status, 200) << poll.body;
  // A header that is not an address list: the proxy itself is the client.
  EXPECT_EQ(upgrade_status(server, "unknown"), 101);
}

TEST_F(TrustedProxyTest, FromAnyoneElseTheHeaderIsIgnored) {
  WsbridgeInstance server(config("trusted_proxies = [\"10.0.0.0/8\"]"));  // not 127.0.0.1
  WsClient a = connect_as(server, "203.0.113.7");
  confirm_open(a);
  EXPECT_EQ(remote_addresses(server), (std::multiset<std::string>{"127.0.0.1"}));
  EXPECT_EQ(upgrade_status(server, "198.51.100.2"), 503) << "a client cannot choose its address";
}

// A host is usually given a /64 and may use a new address of it for every connection: the
// per-address limit counts the network ([limits] ipv6_prefix_length), the sessions show the
// addresses.
TEST_F(TrustedProxyTest, Ipv6ClientsAreCountedByTheirNetwork) {
  WsbridgeInstance server(config("trusted_proxies = [\"127.0.0.0/8\"]"));
  std::optional<WsClient> a(connect_as(server, "2001:db8:0:1::a"));
  confirm_open(*a);
  EXPECT_EQ(upgrade_status(server, "2001:db8:0:1::b"), 503) << "the same /64";
  EXPECT_EQ(upgrade_status(server, "2001:db8:0:1:ffff:ffff:ffff:ffff"), 503);
  HttpResult poll = http_request(server.port, "GET", "/_wsbridge/poll/e", "",
                                 {{"X-Forwarded-For", "2001:db8:0:1::c"}});
  EXPECT_EQ(poll.status, 503) << poll.body;
  WsClient b = connect_as(server, "2001:db8:0:2::a");  // the next /64: another client
  confirm_open(b);
  EXPECT_EQ(remote_addresses(server),
            (std::multiset<std::string>{"2001:db8:0:1::a", "2001:db8:0:2::a"}));
  a.reset();  // closed: its network's place is free again
  EXPECT_TRUE(eventually([&] { return upgrade_status(server, "2001:db8:0:1::d") == 101; }));
}

TEST_F(TrustedProxyTest, Ipv6PrefixLength128CountsEachAddress) {
  WsbridgeInstance server(
      config("trusted_proxies = [\"127.0.0.0/8\"]", "ipv6_prefix_length = 128"));
  WsClient a = connect_as(server, "2001:db8:0:1::a");
  confirm_open(a);
  EXPECT_EQ(upgrade_status(server, "2001:db8:0:1::b"), 101);
  EXPECT_EQ(upgrade_status(server, "2001:DB8:0:1:0:0:0:A"), 503)
      << "the same address, however written";
}

}  // namespace
}  // namespace wsbridge::testing
