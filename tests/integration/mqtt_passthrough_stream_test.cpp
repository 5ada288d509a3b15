// The MQTT pass-through against a real mosquitto, driven by the tests' own WebSocket client with
// MQTT packets from the codec: the broker connection itself (plain and TLS, a broker that
// vanishes and comes back, one that cannot be verified), flow control towards a browser that
// does not read, and the server's reload and shutdown with relays open (#17). The foreign clients
// (mqtt.js, Paho JS) are tests/e2e/mqtt_passthrough_*.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <thread>

#include "passthrough/mqtt_packets.hpp"
#include "support/mosquitto.hpp"
#include "support/test_ca.hpp"
#include "wsbridge_instance.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;
namespace wire = wsbridge::mqtt::wire;

// An MQTT client over the tests' WebSocket client.
class MqttWs {
 public:
  MqttWs(const WsbridgeInstance& server, const std::string& path) : ws_(open(server, path)) {}
  // Over a socket whose receive buffer is `receive_buffer` bytes from the start (a slow link's
  // client: set after connecting, the window already offered stays).
  MqttWs(const WsbridgeInstance& server, const std::string& path, int receive_buffer)
      : ws_(open_small(server, path, receive_buffer)) {}

  void send(const std::string& packet) { ws_.send_binary(packet); }
  // The next packet from the server (several may share a message, or one span messages).
  std::string next(std::chrono::milliseconds timeout = 5s) {
    std::string_view packet;
    while (reader_.next(packet) != wire::PacketReader::Status::kPacket) {
      const WsClient::Message m = ws_.read_message(timeout);
      if (m.opcode == Opcode::kClose) {
        close_code_ = m.close_code();
        throw std::runtime_error("closed " + std::to_string(m.close_code()) + ": " +
                                 m.close_reason());
      }
      held_ = m.data;
      reader_.feed(held_);
    }
    return std::string(packet);
  }
  static std::string connect_packet(std::uint8_t version, const std::string& client_id,
                                    std::uint16_t keepalive = 30) {
    wire::ConnectPacket c;
    c.version = version;
    c.client_id = client_id;
    c.keepalive = keepalive;
    return wire::encode_connect(c);
  }
  void connect(std::uint8_t version, const std::string& client_id, std::uint16_t keepalive = 30) {
    send(connect_packet(version, client_id, keepalive));
    std::string error;
    const auto connack = wire::parse_connack(next(), version, error);
    ASSERT_TRUE(connack) << error;
    ASSERT_EQ(connack->code, 0);
  }
  void subscribe(std::uint8_t version, const std::string& filter) {
    wire::SubscribePacket s{1, {}, {{filter, 0}}};
    send(wire::encode_subscribe(s, version));
    const std::string suback = next();
    ASSERT_EQ(wire::packet_type(suback), wire::PacketType::kSuback);
  }
  WsClient& ws() { return ws_; }

 private:
  static WsClient open(const WsbridgeInstance& server, const std::string& path) {
    ClientOptions opts = server.client(path);
    opts.extra_headers = {{"Sec-WebSocket-Protocol", "mqtt"}};
    return WsClient::connect(opts);
  }
  static WsClient open_small(const WsbridgeInstance& server, const std::string& path,
                             int receive_buffer) {
    ClientOptions opts = server.client(path);
    opts.extra_headers = {{"Sec-WebSocket-Protocol", "mqtt"}};
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(opts.port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
      ::close(fd);
      throw std::runtime_error("connect to port " + std::to_string(opts.port) + " failed");
    }
    TcpConn conn = TcpConn::adopt(fd);
    conn.send_all(build_handshake_request(opts));
    const HttpResponse answer = conn.read_http_response();
    if (answer.status != 101)
      throw std::runtime_error("no upgrade: " + std::to_string(answer.status));
    return WsClient::adopt(std::move(conn));
  }
  WsClient ws_;
  wire::PacketReader reader_{1 << 26};
  std::string held_;
  std::optional<std::uint16_t> close_code_;
};

std::string publish(std::uint8_t version, const std::string& topic, const std::string& payload) {
  wire::PublishPacket p;
  p.topic = topic;
  p.payload = payload;
  return wire::encode_publish(p, version);
}

std::string route(const std::string& uri, const std::string& extra = "") {
  return R"(
[[listeners]]
port = ${PORT}
[upstreams.broker]
uri = ")" +
         uri + "\"\n" + extra + R"(
[[routes]]
path = "/mqtt"
adapter = "mqtt"
mode = "passthrough"
upstream = "broker"
allow_subscribe = ["#"]
allow_publish = ["#"]
max_message_bytes = "2MiB"
)";
}

TEST(MqttPassthroughStreamTest, RelaysBothWaysWithTheForcedIdentityAtTheBroker) {
  Mosquitto broker;
  WsbridgeInstance server(route(broker.uri(), "username = \"bridge\"\npassword = \"s3cret\"\n"));
  MqttWs reader(server, "/mqtt");
  reader.connect(wire::kMqtt5, "reader");
  reader.subscribe(wire::kMqtt5, "sensors/#");
  MqttWs writer(server, "/mqtt");
  writer.connect(wire::kMqtt311, "writer");
  writer.send(publish(wire::kMqtt311, "sensors/t", "21.5"));
  std::string error;
  const std::string got = reader.next();
  auto p = wire::parse_publish(got, wire::kMqtt5, error);
  ASSERT_TRUE(p) << error;
  EXPECT_EQ(p->topic, "sensors/t");
  EXPECT_EQ(p->payload, "21.5");
  // The broker saw the forced client ids and the service credentials, never the browser's.
  const std::string log = broker.log();
  EXPECT_NE(log.find("as anonymous:reader"), std::string::npos) << log;
  EXPECT_NE(log.find("u'bridge'"), std::string::npos) << log;
}

// A client that says all it has to say at once (a device reporting one value): CONNECT, PUBLISH
// and DISCONNECT in one message, before the broker connection is up. All of it went with the
// close: the link dropped what it held while still connecting.
TEST(MqttPassthroughStreamTest, PacketsSentBeforeTheBrokerIsReachedGoWhenTheClientLeavesAtOnce) {
  Mosquitto broker;
  WsbridgeInstance server(route(broker.uri()));
  MqttWs reader(server, "/mqtt");
  reader.connect(wire::kMqtt311, "reader");
  reader.subscribe(wire::kMqtt311, "sensors/#");
  for (const bool one_message : {true, false}) {
    MqttWs device(server, "/mqtt");
    const std::string client_id = one_message ? "device-1" : "device-2";
    const std::string packets[] = {MqttWs::connect_packet(wire::kMqtt311, client_id),
                                   publish(wire::kMqtt311, "sensors/fire", client_id),
                                   wire::encode_disconnect(wire::kMqtt311, 0)};
    if (one_message) {
      device.send(packets[0] + packets[1] + packets[2]);
    } else {
      for (const std::string& packet : packets) device.send(packet);
    }
    EXPECT_EQ(device.ws().wait_close(5s), 1000);
    std::string error;
    const std::string got = reader.next();  // (the parsed packet's views point into it)
    auto p = wire::parse_publish(got, wire::kMqtt311, error);
    ASSERT_TRUE(p) << error;
    EXPECT_EQ(p->payload, client_id);
  }
}

TEST(MqttPassthroughStreamTest, TlsUpstreamIsVerifiedAgainstItsCa) {
  const TestPki& pki = TestPki::get();
  const std::uint16_t tls_port = free_tcp_port();
  Mosquitto broker("listener " + std::to_string(tls_port) + " 127.0.0.1\ncafile " +
                   pki.ca.cert_file() + "\ncertfile " + pki.server.cert_file + "\nkeyfile " +
                   pki.server.key_file + "\n");
  const std::string uri = "ssl://127.0.0.1:" + std::to_string(tls_port);
  {
    WsbridgeInstance server(route(uri, "ca_file = \"" + pki.ca.cert_file() + "\"\n"));
    MqttWs client(server, "/mqtt");
    client.connect(wire::kMqtt5, "tls");
    client.subscribe(wire::kMqtt5, "a/b");
    client.send(publish(wire::kMqtt5, "a/b", "over TLS"));
    std::string error;
    EXPECT_EQ(wire::parse_publish(client.next(), wire::kMqtt5, error)->payload, "over TLS");
  }
  // A broker whose certificate another CA signed is refused: the browser hears it in MQTT.
  WsbridgeInstance server(route(uri, "ca_file = \"" + pki.other_ca.cert_file() + "\"\n"));
  MqttWs client(server, "/mqtt");
  wire::ConnectPacket c;
  c.version = wire::kMqtt5;
  client.send(wire::encode_connect(c));
  std::string error;
  auto connack = wire::parse_connack(client.next(), wire::kMqtt5, error);
  ASSERT_TRUE(connack) << error;
  EXPECT_EQ(connack->code, wire::reason::kServerUnavailable);
  EXPECT_EQ(client.ws().wait_close(), 1013);
}

TEST(MqttPassthroughStreamTest, BrokerOutageDisconnectsAndARetryWorksOnceItIsBack) {
  Mosquitto broker;
  WsbridgeInstance server(route(broker.uri()));
  MqttWs client(server, "/mqtt");
  client.connect(wire::kMqtt5, "outage");
  broker.kill();
  std::string error;
  EXPECT_EQ(wire::parse_disconnect(client.next(), wire::kMqtt5, error),
            wire::reason::kServerShuttingDown);
  EXPECT_EQ(client.ws().wait_close(), 1001);
  {
    MqttWs refused(server, "/mqtt");
    wire::ConnectPacket c;
    refused.send(wire::encode_connect(c));
    auto connack = wire::parse_connack(refused.next(), wire::kMqtt311, error);
    ASSERT_TRUE(connack) << error;
    EXPECT_EQ(connack->code, wire::connack311::kServerUnavailable);
  }
  broker.start();
  MqttWs again(server, "/mqtt");
  again.connect(wire::kMqtt5, "outage");
}

TEST(MqttPassthroughStreamTest, ABrowserThatDoesNotReadHoldsTheBrokerBackNotOurMemory) {
  Mosquitto broker;
  WsbridgeInstance server(route(broker.uri()));
  MqttWs slow(server, "/mqtt");
  slow.connect(wire::kMqtt311, "slow");
  slow.subscribe(wire::kMqtt311, "bulk");
  const long before = rss_kib(server.process->pid());
  // 48 MiB for a browser that reads nothing (the kernel's socket buffers take a few of them, and
  // are not in wsbridge's RSS).
  MqttWs writer(server, "/mqtt");
  writer.connect(wire::kMqtt311, "writer");
  const std::string chunk(256 * 1024, 'x');
  for (int i = 0; i < 192; ++i) writer.send(publish(wire::kMqtt311, "bulk", chunk));
  std::this_thread::sleep_for(2s);
  const long grown = rss_kib(server.process->pid()) - before;
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // (Sanitizer runtimes keep freed memory: there RSS says nothing, and the reading below, which
  // fails on a relay that never held the broker back, is the test.)
  EXPECT_LT(grown, 24 * 1024) << "wsbridge buffered " << grown << " KiB for one slow reader";
#else
  (void)grown;
#endif
  // Nothing was dropped on the way: the browser reads on and gets whole packets.
  std::string error;
  for (int i = 0; i < 192; ++i) {
    auto p = wire::parse_publish(slow.next(10s), wire::kMqtt311, error);
    ASSERT_TRUE(p) << "packet " << i << ": " << error;
    ASSERT_EQ(p->payload.size(), chunk.size());
  }
}

// A SUBSCRIBE or UNSUBSCRIBE of a million tiny filters (4 MiB, the route's max_packet_bytes) is
// walked in place: the relay's peak memory grows by a few times the packet, not by the 65-99 MB
// it took when every filter became a string in a vector. Every filter still gets its code.
TEST(MqttPassthroughStreamTest, AMillionFiltersInOnePacketCostAboutThePacket) {
  Mosquitto broker;
  WsbridgeInstance server(route(broker.uri()));
  MqttWs client(server, "/mqtt");
  client.connect(wire::kMqtt311, "many");
  const long peak_before = peak_rss_kib(server.process->pid());
  // One filter the broker gets, then "a#" (invalid: refused here, 5 bytes each) to 4 MiB.
  std::string entries;
  wire::append_subscribe_entry(entries, "ok/1", 1);
  std::size_t count = 1;
  while (entries.size() + 5 < 4 * 1024 * 1024 - 16) {
    wire::append_subscribe_entry(entries, "a#", 0);
    ++count;
  }
  const std::string subscribe = wire::encode_subscribe(7, {}, entries, wire::kMqtt311);
  // (In two messages: the route's max_message_bytes is 2 MiB, and packets may span messages.)
  client.send(subscribe.substr(0, subscribe.size() / 2));
  client.send(subscribe.substr(subscribe.size() / 2));
  std::string error;
  // (30 s: walking a million filters takes seconds under ThreadSanitizer.)
  const auto suback = wire::parse_suback(client.next(30s), wire::kMqtt311, error);
  ASSERT_TRUE(suback) << error;
  EXPECT_EQ(suback->packet_id, 7);
  ASSERT_EQ(suback->codes.size(), count);
  EXPECT_EQ(suback->codes[0], 1) << "the broker's code for the one it was sent";
  EXPECT_EQ(std::count(suback->codes.begin(), suback->codes.end(), 0x80), count - 1);
  // The one filter that went to the broker works.
  MqttWs writer(server, "/mqtt");
  writer.connect(wire::kMqtt311, "writer");
  writer.send(publish(wire::kMqtt311, "ok/1", "still subscribed"));
  EXPECT_EQ(wire::parse_publish(client.next(), wire::kMqtt311, error)->payload, "still subscribed");
  // Its twin: an UNSUBSCRIBE of a million one-byte filters, every one checked before the last
  // (invalid) one ends the connection. (Kept from the broker: mosquitto logs each filter.)
  wire::UnsubscribePacket unsubscribe{8, {}, std::vector<std::string>(1'300'000, "b")};
  unsubscribe.filters.back() = "a#";
  const std::string packet = wire::encode_unsubscribe(unsubscribe, wire::kMqtt311);
  ASSERT_LT(packet.size(), 4u * 1024 * 1024);
  client.send(packet.substr(0, packet.size() / 2));
  client.send(packet.substr(packet.size() / 2));
  EXPECT_EQ(client.ws().wait_close(30s), 1002);
  const long grown = peak_rss_kib(server.process->pid()) - peak_before;
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // (Sanitizer runtimes keep freed memory; there the codes above are the test.)
  EXPECT_LT(grown, 32 * 1024) << "the peak grew by " << grown << " KiB for two 4 MiB packets";
#else
  (void)grown;
#endif
}

// A client slow to take one large delivery: the core stops reading it until that frame is out,
// and the PINGREQs it sends meanwhile wait unread; taking bytes of the frame is what shows it is
// alive, also bytes the kernel already held (a send queue of megabytes makes the socket writable
// again only once much of it drained: no write turn shows a slow reader). The relay counted that
// time as silence and closed it for its keepalive (0x8D) in the middle of the delivery. (One
// that takes nothing more: relay_liveness_test.cpp.)
// The slow client's keepalive, and its slow reading: longer than 1.5 times that. Under
// ThreadSanitizer everything runs many times slower, and the relay's own PINGREQ for it (due
// after one to one and a quarter keepalives of quiet) once came after the broker's 1.5.
#if defined(__SANITIZE_THREAD__)
constexpr int kSlowKeepalive = 6;
#else
constexpr int kSlowKeepalive = 3;
#endif
constexpr int kSlowReadTurns = (kSlowKeepalive * 3 / 2 + 3) * 4;  // 250 ms each: 7 s for 3 s

TEST(MqttPassthroughStreamTest, AClientSlowToTakeALargeDeliveryIsNotClosedForItsKeepalive) {
  Mosquitto broker;
  WsbridgeInstance server(route(broker.uri()) +
                          "keepalive_min = \"1s\"\nmax_packet_bytes = \"16MiB\"\n");
  MqttWs writer(server, "/mqtt");
  writer.connect(wire::kMqtt311, "writer");
  MqttWs slow(server, "/mqtt", 8 * 1024);
  slow.connect(wire::kMqtt311, "slow", kSlowKeepalive);  // silent for 1.5 times that: closed
  slow.subscribe(wire::kMqtt311, "large");
  const std::string pingreq("\xC0\x00", 2);
  int pings = 0;
  auto ping = [&] {
    try {
      slow.send(pingreq);
      ++pings;
    } catch (const std::exception& e) {  // (closed: say why)
      FAIL() << e.what() << "\n" << server.process->output();
    }
  };
  // 12 MiB, more than the kernel's socket buffers take: most of the frame waits in wsbridge. (In
  // 1 MiB messages: the route's max_message_bytes is 2 MiB, and packets may span messages. The
  // client pings meanwhile: under ThreadSanitizer the upload alone can outlast its keepalive.)
  const std::string large = publish(wire::kMqtt311, "large", std::string(12 * 1024 * 1024, 'x'));
  for (std::size_t at = 0; at < large.size(); at += 1024 * 1024) {
    ASSERT_NO_FATAL_FAILURE(ping());
    writer.send(large.substr(at, 1024 * 1024));
  }
  // 7 s (for 3 s of keepalive) of taking 4 KiB now and then (a slow link: 16 KB/s, far too
  // little for the kernel to say the socket is writable again), with PINGREQs we do not read
  // meanwhile.
  for (int i = 0; i < kSlowReadTurns; ++i) {
    std::this_thread::sleep_for(250ms);
    char taken[4096];
    const ssize_t n = ::recv(slow.ws().tcp().fd(), taken, sizeof taken, MSG_DONTWAIT);
    if (n > 0) slow.ws().tcp().buffer().append(taken, static_cast<std::size_t>(n));
    if (i % 2 == 1) {
      ASSERT_NO_FATAL_FAILURE(ping());
    }
  }
  // The delivery, and an answer to every PINGREQ (those read before the delivery began come
  // before it): it was never closed.
  std::string error;
  int answered = 0;
  std::size_t delivered = 0;
  for (int i = 0; i < pings + 1; ++i) {
    const std::string packet = slow.next(20s);
    if (wire::packet_type(packet) == wire::PacketType::kPingresp) {
      ++answered;
      continue;
    }
    const auto p = wire::parse_publish(packet, wire::kMqtt311, error);
    ASSERT_TRUE(p) << error;
    delivered = p->payload.size();
  }
  EXPECT_EQ(delivered, 12u * 1024 * 1024);
  EXPECT_EQ(answered, pings);
  EXPECT_EQ(server.process->output().find("1.5 times its keepalive"), std::string::npos);
}

TEST(MqttPassthroughStreamTest, ReloadKeepsRelaysAndShutdownEndsThemCleanly) {
  Mosquitto broker;
  WsbridgeInstance server(route(broker.uri()));
  MqttWs client(server, "/mqtt");
  client.connect(wire::kMqtt311, "kept");
  client.subscribe(wire::kMqtt311, "k");
  server.rewrite_config(route(broker.uri()) +
                        "\n[[routes]]\npath = \"/echo\"\nadapter = \"echo\"\n");
  server.process->signal(SIGHUP);
  ASSERT_TRUE(server.process->wait_for_output("configuration reloaded", 5s));
  client.send(publish(wire::kMqtt311, "k", "after reload"));
  std::string error;
  EXPECT_EQ(wire::parse_publish(client.next(), wire::kMqtt311, error)->payload, "after reload");
  server.process->signal(SIGTERM);
  EXPECT_EQ(client.ws().wait_close(), 1012);
  EXPECT_EQ(server.process->wait_exit(10s), 0);
}

}  // namespace
}  // namespace wsbridge::testing
