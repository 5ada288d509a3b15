// Drives one pass-through Relay directly: a fake Connection stands for the browser's WebSocket
// (what the relay sends it is recorded and re-read as MQTT packets), a fake StreamEndpoint for the
// broker connection (the test plays the broker: it reads what was written and answers through
// the relay's StreamHandler side).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "passthrough/mqtt_packets.hpp"
#include "passthrough/passthrough_metrics.hpp"
#include "passthrough/relay.hpp"

namespace wsbridge::mqtt::testing {

namespace wire = wsbridge::mqtt::wire;

class FakeBrowser final : public Connection {
 public:
  ConnectionId id() const override { return 42; }
  const Identity& identity() const override { return who; }
  SendResult send(Frame frame) override {
    received.append(frame.payload());
    return next_send;
  }
  void close(CloseCode code, std::string_view reason) override {
    close_code = code;
    close_reason = reason;
  }
  bool is_open() const override { return !close_code; }
  void pause_reading(bool paused) override { reading_paused = paused; }
  std::optional<std::chrono::steady_clock::time_point> heard_while_held() const override {
    return heard_while_reading_held;
  }
  bool hold_inbound(std::size_t bytes, InboundHold kind) override {
    EXPECT_EQ(kind, InboundHold::kPartial);
    holds.push_back(bytes);
    if (bytes > hold_limit) return false;
    held = bytes;
    return true;
  }
  CredentialCheck authenticate(std::string_view credential) override {
    checked_credential = credential;
    CredentialCheck check;
    check.ok = credential == "good-token";
    check.reason = check.ok ? "" : "invalid token";
    check.user = "carol";
    check.auth_method = "jwt";
    return check;
  }

  // The MQTT packets the browser received since the last call.
  std::vector<std::string> take_packets() {
    std::vector<std::string> out;
    wire::PacketReader reader(1 << 24);
    reader.feed(received);
    std::string_view packet;
    while (reader.next(packet) == wire::PacketReader::Status::kPacket) out.emplace_back(packet);
    received.clear();
    return out;
  }

  Identity who;
  std::string received;
  SendResult next_send = SendResult::kQueued;
  std::optional<CloseCode> close_code;
  std::string close_reason;
  bool reading_paused = false;
  // Set while the core holds its reading (a frame to it half written): when it last took bytes.
  std::optional<std::chrono::steady_clock::time_point> heard_while_reading_held;
  std::string checked_credential;
  std::vector<std::size_t> holds;  // every hold_inbound() asked
  std::size_t held = 0;            // what the last granted one set
  std::size_t hold_limit = static_cast<std::size_t>(-1);
};

class FakeStream final : public Stream {
 public:
  bool write(std::string_view bytes) override {
    if (closed) return false;  // as a closed link takes nothing more
    written.append(bytes);
    return room;
  }
  std::size_t buffered() const override { return 0; }
  void pause_reading(bool paused) override { reading_paused = paused; }
  void set_timer(std::chrono::milliseconds delay) override { timer = delay; }
  void close() override { closed = true; }

  std::string written;
  bool room = true;
  bool reading_paused = false;
  bool closed = false;
  std::chrono::milliseconds timer{0};
};

class FakeEndpoint final : public StreamEndpoint {
 public:
  std::unique_ptr<Stream> connect(StreamHandler& events) override {
    auto s = std::make_unique<FakeStream>();
    stream = s.get();
    handler = &events;
    return s;
  }
  const std::string& url() const override { return url_; }

  FakeStream* stream = nullptr;
  StreamHandler* handler = nullptr;

 private:
  std::string url_ = "tcp://127.0.0.1:1883";
};

// A SUBSCRIBE of `filters` (QoS 1 each), and the codes of a SUBACK.
inline std::string subscribe_packet(std::uint8_t version, std::uint16_t id,
                                    const std::vector<std::string>& filters) {
  wire::SubscribePacket s;
  s.packet_id = id;
  for (const auto& f : filters) s.entries.push_back({f, 1});
  return wire::encode_subscribe(s, version);
}

inline std::vector<std::uint8_t> suback_codes(const std::string& packet, std::uint8_t version) {
  std::string error;
  auto suback = wire::parse_suback(packet, version, error);
  EXPECT_TRUE(suback) << error;
  return suback ? suback->codes : std::vector<std::uint8_t>{};
}

class RelayTest : public ::testing::Test {
 protected:
  RelayTest() : metrics_(PassthroughMetrics::for_route("/relay-test")) {
    route_.path = "/relay-test";
    route_.allow_subscribe = {"sensors/#", "users/{user}/#", "$share/+/jobs/#"};
    route_.allow_publish = {"users/{user}/out/#"};
    route_.service_username = "bridge";
    route_.service_password = "service-secret";
    route_.keepalive_min = std::chrono::seconds(5);
    route_.keepalive_max = std::chrono::seconds(300);
    fresh_browser();
  }

  // A browser of user alice: the fixture's, and a new one for each further case of a test.
  void fresh_browser() {
    browser_ = std::make_shared<FakeBrowser>();
    browser_->who.user = "alice";
  }

  void start() {
    relay_ = std::make_unique<Relay>(browser_, std::make_shared<PassthroughRouteConfig>(route_),
                                     endpoint_, metrics_);
  }
  void from_browser(std::string_view bytes) { relay_->from_client(Frame::binary(bytes)); }
  // What the relay wrote to the broker since the last call, as packets.
  std::vector<std::string> broker_packets() {
    std::vector<std::string> out;
    if (endpoint_.stream == nullptr) return out;
    wire::PacketReader reader(1 << 24);
    reader.feed(endpoint_.stream->written);
    std::string_view packet;
    while (reader.next(packet) == wire::PacketReader::Status::kPacket) out.emplace_back(packet);
    endpoint_.stream->written.clear();
    return out;
  }
  static std::string connect_packet(std::uint8_t version, const std::string& client_id,
                                    std::uint16_t keepalive = 60,
                                    const std::string& properties = {}) {
    wire::ConnectPacket c;
    c.version = version;
    c.client_id = client_id;
    c.keepalive = keepalive;
    c.properties = properties;
    c.username = "browser-user";
    c.password = "browser-password";
    return wire::encode_connect(c);
  }
  // CONNECT from the browser, CONNACK from the broker: the session is relaying.
  void connect(std::uint8_t version, std::uint16_t keepalive = 60) {
    start();
    from_browser(connect_packet(version, "dash", keepalive));
    broker_packets();
    endpoint_.handler->on_connected();
    endpoint_.handler->on_data(wire::encode_connack(wire::ConnackPacket{}, version));
    browser_->take_packets();
  }
  static std::string publish_packet(std::uint8_t version, const std::string& topic,
                                    std::uint8_t qos, std::uint16_t id = 0,
                                    const std::string& properties = {}) {
    wire::PublishPacket p;
    p.topic = topic;
    p.qos = qos;
    p.packet_id = id;
    p.properties = properties;
    p.payload = "payload";
    return wire::encode_publish(p, version);
  }

  PassthroughRouteConfig route_;
  PassthroughMetrics metrics_;
  std::shared_ptr<FakeBrowser> browser_;  // (fresh_browser)
  FakeEndpoint endpoint_;
  std::unique_ptr<Relay> relay_;
};

}  // namespace wsbridge::mqtt::testing
