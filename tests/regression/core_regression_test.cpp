// Regression tests (#13) for the core: closes that must happen, limits that must hold, and
// subprotocol refusals. The HTTP side (the public port's framing, the admin API against
// cross-site use) is in core_http_regression_test.cpp. Each one fails without the fix it names.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "integration/wsbridge_instance.hpp"
#include "support/eventually.hpp"
#include "support/http_backend.hpp"
#include "support/prometheus.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

std::size_t count_of(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

// Reads until the server's close frame; fails the test on any data message carrying `forbidden`.
std::uint16_t close_code_without(WsClient& ws, const std::string& forbidden,
                                 std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) throw std::runtime_error("no close frame in time");
    WsClient::Message m = ws.read_message(left);
    if (m.opcode == Opcode::kClose) return m.close_code();
    EXPECT_EQ(m.data.find(forbidden), std::string::npos) << "reached the adapter: " << m.data;
  }
}

// Run in both compression modes: wsbridge's shared permessage-deflate (the default) and
// compression = "per_connection", which was lws' own per-connection one (whose drain path #13.1
// was about) and is served as "shared" since lws' aborted the process (the tests below).
class OversizedCompressedMessage : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    setenv("WSBRIDGE_TEST_ADMIN_TOKEN", "admin-secret", 1);
    std::string config = R"(
[admin]
port = ${PORT2}
token_env = "WSBRIDGE_TEST_ADMIN_TOKEN"
[[listeners]]
port = ${PORT}
compression = "${MODE}"
[[routes]]
path = "/echo"
adapter = "echo"
prefix = "Echo: "
max_message_bytes = 65536
[[routes]]
path = "/big"
adapter = "echo"
max_message_bytes = 1048576
)";
    WsbridgeInstance::replace_all(config, "${MODE}", GetParam());
    server_.emplace(config);
  }
  double open_connections(const std::string& route = "/echo") {
    HttpResponse r = http_get("127.0.0.1", server_->port2, "/metrics",
                              {{"Authorization", "Bearer admin-secret"}});
    return sample(r.body, "wsbridge_connections{route=\"" + route + "\"}").value_or(-1);
  }
  bool all_closed(const std::string& route, std::chrono::seconds within) {
    return eventually([&] { return open_connections(route) == 0; }, within, 50ms);
  }
  WsClient connect_deflate(const std::string& path = "/echo") {
    ClientOptions opts = server_->client(path);
    opts.offer_deflate = true;
    WsClient ws = WsClient::connect(opts);
    EXPECT_TRUE(ws.deflate_negotiated());
    // The 101 may reach us before the server counts the session open (lws calls ESTABLISHED
    // after writing it): wait, so that all_closed cannot see a 0 from before it.
    eventually([&] { return open_connections(path) >= 1; }, 5s, 10ms);
    return ws;
  }
  std::optional<WsbridgeInstance> server_;
};

// #13.1: a deflated message over max_message_bytes closed nothing: no close frame, later frames
// still reached the adapter, and the connection stayed open (and counted) forever.
TEST_P(OversizedCompressedMessage, ClosesWith1009AndDeliversNothingAfter) {
  WsClient ws = connect_deflate();
  ws.send_text("before");
  EXPECT_EQ(ws.read_message().data, "Echo: before");
  ws.send_text(std::string(100 * 1024, ' '));  // a few hundred bytes on the wire
  ws.send_text("after the bomb");
  EXPECT_EQ(close_code_without(ws, "after the bomb", 5s), 1009);
  EXPECT_TRUE(ws.tcp().wait_closed(10s)) << "the server kept the socket after its close";
  EXPECT_TRUE(all_closed("/echo", 10s));
}

// #13.1: a 10 MiB bomb logged its 1009 line over a hundred times (once per inflated chunk).
TEST_P(OversizedCompressedMessage, BombIsRefusedOnce) {
  WsClient ws = connect_deflate();
  ws.send_text(std::string(10 * 1024 * 1024, 'a'));
  EXPECT_EQ(close_code_without(ws, "Echo:", 10s), 1009);
  EXPECT_TRUE(ws.tcp().wait_closed(10s));
  // (The access-log line comes after every line about the connection.)
  ASSERT_TRUE(server_->process->wait_for_output(" close remote=", 5s));  // (the one connection)
  EXPECT_EQ(count_of(server_->process->output(), "closing with 1009"), 1u);
}

// #13.1: a client that never answers the close (nor reads, nor sends) must not keep its slot.
TEST_P(OversizedCompressedMessage, SilentClientIsDroppedWithinTheGrace) {
  WsClient ws = connect_deflate();
  ws.send_text(std::string(100 * 1024, ' '));
  EXPECT_TRUE(all_closed("/echo", 15s));
}

// Twins of #13.1 in lws' deflate drain path, which ignores every error met there. Invalid UTF-8
// past the first rx buffer of inflated text closes with 1007 (the core validates text itself
// now; lws got there too, after its 5 s close timeout) ...
TEST_P(OversizedCompressedMessage, InvalidUtf8DeepInACompressedMessageCloses1007) {
  WsClient ws = connect_deflate("/big");
  ws.send_text(std::string(4000, 'x') + "\xC3\x28" + std::string(4000, 'y'));
  ws.send_text("after");
  EXPECT_EQ(close_code_without(ws, "after", 5s), 1007);
  EXPECT_TRUE(all_closed("/big", 10s));
}

// ... and a stream that fails to inflate after its first rx buffer of output must end the
// connection, not freeze it: 4,000 spaces deflate to a few bytes, so the reserved block type that
// follows them is met while lws drains the output.
TEST_P(OversizedCompressedMessage, CorruptCompressedStreamEndsTheConnection) {
  WsClient ws = connect_deflate("/big");
  const std::string wire = ws.compress(std::string(4000, ' ')) + std::string("\x06\x00\x00", 3);
  ASSERT_LT(wire.size(), 100u);
  ws.send_frame(Opcode::kText, wire, true, true, /*rsv1=*/true);
  EXPECT_TRUE(ws.tcp().wait_closed(10s));
  EXPECT_TRUE(all_closed("/big", 10s));
  EXPECT_TRUE(server_->process->wait_for_output("invalid compressed data", 5s));
}

// lws' deflater (per_connection, before it was served as "shared") aborted the whole process on
// an empty message sent after any other on the same connection: here the echo of an empty one.
TEST_P(OversizedCompressedMessage, EmptyMessagesAreEchoedAfterOthers) {
  WsClient ws = connect_deflate("/big");
  for (const std::string text : {"abc", "", "", "z", ""}) {
    ws.send_text(text);
    EXPECT_EQ(ws.read_message().data, text);
  }
  ws.send_binary("");
  EXPECT_EQ(ws.read_message().data, "");
  ws.send_text("still here");
  EXPECT_EQ(ws.read_message().data, "still here");
}

// lws' inflater (per_connection) aborted the whole process on an ordinary compressed message: a
// run of one letter some 2.5 KB long, from Chromium, Node's ws or python websockets, left a
// match still being copied as its 1 KiB output buffer filled (an assert). That mode is served
// as "shared" now; both modes must echo every such message.
TEST_P(OversizedCompressedMessage, LongCompressibleMessagesAreEchoed) {
  for (std::size_t n = 2400; n <= 2800; n += 7) {
    WsClient ws = connect_deflate("/big");
    ws.send_text(std::string(n, 'a'));
    ASSERT_EQ(ws.read_message().data.size(), n);
  }
}

// RFC 7692 6.1 and RFC 6455 5.2, where lws' own extension (per_connection then) answered a PING
// with RSV1, took a continuation with RSV1, and dropped a 64-bit length with its top bit set
// without a close frame: each now gets 1002 in both modes.
TEST_P(OversizedCompressedMessage, MisplacedRsv1AndAnImpossibleLengthClose1002) {
  for (int which = 0; which < 3; ++which) {
    SCOPED_TRACE(which);
    WsClient ws = connect_deflate("/big");
    ws.send_text("first");
    EXPECT_EQ(ws.read_message().data, "first");
    if (which == 0) {
      ws.send_frame(Opcode::kPing, "p", true, true, /*rsv1=*/true);
    } else if (which == 1) {
      ws.send_frame(Opcode::kText, "a", false, true);
      ws.send_frame(Opcode::kContinuation, "b", true, true, /*rsv1=*/true);
    } else {
      ws.tcp().send_all(
          std::string("\x82\xff\x80\x00\x00\x00\x00\x00\x00\x01\x01\x02\x03\x04", 14));
    }
    EXPECT_EQ(close_code_without(ws, "ab", 5s), 1002);
  }
}

INSTANTIATE_TEST_SUITE_P(BothModes, OversizedCompressedMessage,
                         ::testing::Values("shared", "per_connection"));

// The statuses of `n` upgrades started at once (101, or the refusal's status; 0 for no answer).
std::vector<int> concurrent_upgrades(const ClientOptions& opts, int n) {
  std::vector<std::future<int>> results;
  for (int i = 0; i < n; ++i) {
    results.push_back(std::async(std::launch::async, [opts] {
      try {
        WsClient ws = WsClient::connect(opts);
        // Hold it open until every other upgrade has been answered.
        std::this_thread::sleep_for(3s);
        return 101;
      } catch (const HandshakeError& e) {
        return e.response().status;
      } catch (const std::exception&) {
        return 0;
      }
    }));
  }
  std::vector<int> statuses;
  for (auto& r : results) statuses.push_back(r.get());
  return statuses;
}

class HeldUpgradeLimits : public ::testing::Test {
 protected:
  void start(const std::string& limits) {
    WsbridgeInstance::replace_all(config_, "${LIMITS}", limits);
    WsbridgeInstance::replace_all(config_, "${BACKEND}", backend_.base_url());
    server_.emplace(config_);
  }
  std::string config_ = R"(
[limits]
${LIMITS}
max_http_connections_per_ip = 100  # (these tests are about the session limits)
handshake_timeout = "5s"
[[listeners]]
port = ${PORT}
[[routes]]
path = "/hooked"
adapter = "http"
backend = "${BACKEND}/echo"
on_connect = "${BACKEND}/hook/connect"
timeout = "4s"
)";
  HttpBackend backend_;
  std::optional<WsbridgeInstance> server_;
};

// #13.5: upgrades held for an on_connect hook that answers after 1.5 s were not counted per
// address: eight from one address all got 101 under a limit of three.
TEST_F(HeldUpgradeLimits, HeldUpgradesCountPerAddress) {
  start("max_connections_per_ip = 3");
  backend_.configure({{"connect_delay_ms", 1500}});
  const std::vector<int> statuses = concurrent_upgrades(server_->client("/hooked"), 8);
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 101), 3);
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 503), 5);
}

TEST_F(HeldUpgradeLimits, HeldUpgradesCountAgainstTheGlobalLimit) {
  start("max_connections = 2");
  backend_.configure({{"connect_delay_ms", 1500}});
  const std::vector<int> statuses = concurrent_upgrades(server_->client("/hooked"), 5);
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 101), 2);
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 503), 3);
}

// Places taken by refused, timed-out and closed upgrades come back.
TEST_F(HeldUpgradeLimits, RefusedAndClosedUpgradesGiveTheirPlaceBack) {
  start("max_connections_per_ip = 2");
  backend_.configure({{"connect_status", 403}});
  for (int i = 0; i < 4; ++i) {
    try {
      WsClient::connect(server_->client("/hooked"));
      ADD_FAILURE() << "the hook refused it";
    } catch (const HandshakeError& e) {
      EXPECT_EQ(e.response().status, 403);
    }
  }
  backend_.configure({{"connect_status", 200}});
  // (A place comes back when the server has seen the close, a moment after the client did.)
  auto connect = [&] {
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    while (true) {
      try {
        return WsClient::connect(server_->client("/hooked"));
      } catch (const HandshakeError& e) {
        if (e.response().status != 503 || std::chrono::steady_clock::now() > deadline) throw;
        std::this_thread::sleep_for(20ms);
      }
    }
  };
  for (int round = 0; round < 3; ++round) {
    WsClient a = connect();
    WsClient b = connect();
    a.send_close(1000);
    b.send_close(1000);
    EXPECT_EQ(a.wait_close(), 1000);
    EXPECT_EQ(b.wait_close(), 1000);
  }
}

// #13.16: MQTT-over-WebSocket clients got an HTTP 400 their browser hides (mqtt.js retried
// forever without an error event). Now they get a CONNACK refusal they report, and a close reason.
class MqttClientOnAJsonRoute : public ::testing::Test {
 protected:
  WsClient connect() {
    ClientOptions opts = server_.client("/echo");
    opts.extra_headers = {{"Sec-WebSocket-Protocol", "mqtt"}};
    WsClient ws = WsClient::connect(opts);
    EXPECT_EQ(ws.handshake_response().header("Sec-WebSocket-Protocol"), "mqtt");
    return ws;
  }
  // CONNECT with an empty client id, clean session, keepalive 60.
  static std::string connect_packet(int level) {
    std::string body =
        std::string("\x00\x04MQTT", 6) + static_cast<char>(level) + std::string("\x02\x00\x3c", 3);
    if (level == 5) body.push_back('\0');  // no properties
    body += std::string("\x00\x00", 2);    // client id ""
    return std::string(1, '\x10') + static_cast<char>(body.size()) + body;
  }
  WsbridgeInstance server_{R"(
[[listeners]]
port = ${PORT}
[[routes]]
path = "/echo"
adapter = "echo"
)"};
};

TEST_F(MqttClientOnAJsonRoute, Mqtt311ClientGetsARefusingConnackAndACloseReason) {
  WsClient ws = connect();
  ws.send_binary(connect_packet(4));
  const WsClient::Message connack = ws.read_message();
  EXPECT_EQ(connack.opcode, Opcode::kBinary);
  EXPECT_EQ(connack.data, std::string("\x20\x02\x00\x03", 4));  // server unavailable
  const WsClient::Message close = ws.read_message();
  ASSERT_EQ(close.opcode, Opcode::kClose);
  EXPECT_EQ(close.close_code(), 1008);
  EXPECT_NE(close.close_reason().find("not MQTT: route /echo speaks the echo adapter"),
            std::string::npos)
      << close.close_reason();
  EXPECT_EQ(server_.process->output().find("Echo"), std::string::npos);
}

TEST_F(MqttClientOnAJsonRoute, Mqtt5ClientGetsTheReasonInItsConnack) {
  WsClient ws = connect();
  ws.send_binary(connect_packet(5));
  const WsClient::Message connack = ws.read_message();
  ASSERT_GE(connack.data.size(), 7u);
  EXPECT_EQ(static_cast<unsigned char>(connack.data[0]), 0x20);
  EXPECT_EQ(static_cast<unsigned char>(connack.data[3]), 0x88);  // server unavailable
  EXPECT_EQ(static_cast<unsigned char>(connack.data[5]), 0x1f);  // reason string
  EXPECT_NE(connack.data.find("no route here speaks MQTT"), std::string::npos);
  EXPECT_EQ(ws.wait_close(), 1008);
}

// mqtt.js in Node writes its CONNECT in several WebSocket messages: the refusal waited only for
// the first, answered a piece of a CONNECT and closed, and mqtt.js saw nothing but EPIPE (#17).
TEST_F(MqttClientOnAJsonRoute, ConnectSplitOverSeveralMessagesIsAnsweredWhole) {
  WsClient ws = connect();
  const std::string packet = connect_packet(5);
  ws.send_binary(packet.substr(0, 1));
  ws.send_binary(packet.substr(1, 6));
  ws.send_binary(packet.substr(7));
  const WsClient::Message connack = ws.read_message();
  ASSERT_EQ(connack.opcode, Opcode::kBinary);
  ASSERT_GE(connack.data.size(), 7u);
  EXPECT_EQ(static_cast<unsigned char>(connack.data[3]), 0x88);  // MQTT 5: the level was read
  EXPECT_NE(connack.data.find("no route here speaks MQTT"), std::string::npos);
  EXPECT_EQ(ws.wait_close(), 1008);
}

// #17: with a route that speaks MQTT (mode = "passthrough"), the refusal says where to go.
class MqttClientOnAJsonRouteBesideAnMqttRoute : public MqttClientOnAJsonRoute {
 protected:
  WsbridgeInstance mqtt_server_{R"(
[[listeners]]
port = ${PORT}
[upstreams.broker]
uri = "tcp://127.0.0.1:1"
[[routes]]
path = "/echo"
adapter = "echo"
[[routes]]
path = "/devices/mqtt"
adapter = "mqtt"
mode = "passthrough"
upstream = "broker"
allow_subscribe = ["sensors/#"]
)"};
};

TEST_F(MqttClientOnAJsonRouteBesideAnMqttRoute, RefusalNamesTheRoutesThatSpeakMqtt) {
  ClientOptions opts = mqtt_server_.client("/echo");
  opts.extra_headers = {{"Sec-WebSocket-Protocol", "mqtt"}};
  WsClient ws = WsClient::connect(opts);
  ws.send_binary(connect_packet(5));
  const WsClient::Message connack = ws.read_message();
  EXPECT_NE(connack.data.find("MQTT clients connect to /devices/mqtt"), std::string::npos)
      << connack.data;
  EXPECT_EQ(ws.wait_close(), 1008);
  // The route that speaks MQTT takes the subprotocol without listing it.
  ClientOptions mqtt = mqtt_server_.client("/devices/mqtt");
  mqtt.extra_headers = {{"Sec-WebSocket-Protocol", "mqtt"}};
  WsClient accepted = WsClient::connect(mqtt);
  EXPECT_EQ(accepted.handshake_response().header("Sec-WebSocket-Protocol"), "mqtt");
}

TEST_F(MqttClientOnAJsonRoute, SilentMqttClientIsClosedToo) {
  WsClient ws = connect();
  EXPECT_EQ(ws.wait_close(8s), 1008);
}

TEST_F(MqttClientOnAJsonRoute, OtherUnknownSubprotocolsAreStillRefusedWithTheRouteList) {
  ClientOptions opts = server_.client("/echo");
  opts.extra_headers = {{"Sec-WebSocket-Protocol", "stomp"}};
  try {
    WsClient::connect(opts);
    ADD_FAILURE() << "stomp was accepted";
  } catch (const HandshakeError& e) {
    EXPECT_EQ(e.response().status, 400);
  }
}

}  // namespace
}  // namespace wsbridge::testing
