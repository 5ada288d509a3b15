// plugins/mqtt/passthrough/relay_delivery.cpp: what the broker delivers is checked against the
// connection's subscribe ACL (a persistent session may hold subscriptions an earlier connection
// made under a wider one); refused deliveries are acknowledged to the broker, never relayed.
#include "relay_fixture.hpp"

namespace wsbridge::mqtt::testing {
namespace {

wire::AckPacket ack_of(const std::string& packet, std::uint8_t version) {
  std::string error;
  auto ack = wire::parse_ack(packet, version, error);
  EXPECT_TRUE(ack) << error;
  return ack.value_or(wire::AckPacket{});
}

class RelayDeliveryTest : public RelayTest, public ::testing::WithParamInterface<std::uint8_t> {
 protected:
  std::uint8_t version() const { return GetParam(); }
  void from_broker(const std::string& bytes) { endpoint_.handler->on_data(bytes); }
  std::string publish(const std::string& topic, std::uint8_t qos, std::uint16_t id = 0) {
    return publish_packet(version(), topic, qos, id);
  }
};

TEST_P(RelayDeliveryTest, OnlyWhatTheAclAllowsReachesTheBrowserTheRestIsAcknowledged) {
  connect(version());
  const bool v5 = version() == wire::kMqtt5;
  const std::uint64_t denied_before = metrics_.denied_delivery.value();  // (a global registry)
  const std::string allowed1 = publish("sensors/hall/t", 1, 1);
  const std::string allowed2 = publish("users/alice/in", 2, 2);
  const std::string shared = publish("jobs/j1", 0);  // "$share/+/jobs/#" receives it
  from_broker(allowed1 + publish("secret/a", 0) + publish("secret/b", 1, 3) +
              publish("users/bob/in", 2, 4) + allowed2 + shared + publish("$SYS/load", 0));
  EXPECT_EQ(browser_->take_packets(), (std::vector<std::string>{allowed1, allowed2, shared}));
  const auto sent = broker_packets();
  ASSERT_EQ(sent.size(), 2u);
  const wire::AckPacket puback = ack_of(sent[0], version());
  EXPECT_EQ(puback.type, wire::PacketType::kPuback);
  EXPECT_EQ(puback.packet_id, 3);
  const wire::AckPacket pubrec = ack_of(sent[1], version());
  EXPECT_EQ(pubrec.type, wire::PacketType::kPubrec);
  EXPECT_EQ(pubrec.packet_id, 4);
  EXPECT_EQ(puback.code, v5 ? wire::reason::kNotAuthorized : 0);
  // A QoS 2 delivery is received, then completed: an MQTT 5 PUBREC 0x87 would end the exchange,
  // but mosquitto 2.0.11 never gives its in-flight slot back (past 20, nothing more came).
  EXPECT_EQ(pubrec.code, 0);
  EXPECT_EQ(metrics_.denied_delivery.value() - denied_before, 4u);

  // The broker's PUBREL for the dropped QoS 2 delivery is completed here; the one for the
  // relayed delivery goes to the browser, which completes it.
  const std::string pubrel_relayed =
      wire::encode_ack({wire::PacketType::kPubrel, 2, 0, {}}, version());
  from_broker(wire::encode_ack({wire::PacketType::kPubrel, 4, 0, {}}, version()));
  from_broker(pubrel_relayed);
  EXPECT_EQ(browser_->take_packets(), (std::vector<std::string>{pubrel_relayed}));
  const auto completed = broker_packets();
  ASSERT_EQ(completed.size(), 1u);
  const wire::AckPacket pubcomp = ack_of(completed[0], version());
  EXPECT_EQ(pubcomp.type, wire::PacketType::kPubcomp);
  EXPECT_EQ(pubcomp.packet_id, 4);
  EXPECT_FALSE(browser_->close_code);
}

TEST_P(RelayDeliveryTest, ACredentialAclNarrowsDeliveriesToo) {
  browser_->who.acl = TopicAcl{{"sensors/kitchen/#"}, {}};
  connect(version());
  const std::string kitchen = publish("sensors/kitchen/t", 0);
  from_broker(publish("sensors/hall/t", 0) + kitchen);
  EXPECT_EQ(browser_->take_packets(), (std::vector<std::string>{kitchen}));
}

TEST_P(RelayDeliveryTest, AMalformedPublishFromTheBrokerEndsTheSession) {
  connect(version());
  from_broker(std::string("\x32\x03\x00\x05\x61", 5));  // its topic runs past the packet
  ASSERT_TRUE(browser_->close_code);
  EXPECT_EQ(*browser_->close_code, CloseCode::kInternalError);
  EXPECT_NE(browser_->close_reason.find("malformed PUBLISH"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Versions, RelayDeliveryTest,
                         ::testing::Values(wire::kMqtt311, wire::kMqtt5),
                         [](const auto& p) { return p.param == wire::kMqtt5 ? "v5" : "v311"; });

// MQTT 3.1.1 cannot tell the broker the route's max_packet_bytes: a delivery over it ended the
// session, and a persistent session got it again at every reconnect, nothing behind it ever
// arriving. It is skipped now (acknowledged), whole or split however it comes.
TEST_F(RelayTest, A311DeliveryOverTheLimitIsSkippedAndAcknowledged) {
  route_.max_packet_bytes = 1000;
  connect(wire::kMqtt311);
  wire::PublishPacket big;
  big.topic = "sensors/big";
  big.qos = 1;
  big.packet_id = 9;
  const std::string payload(5000, 'x');  // (the packet holds a view of it)
  big.payload = payload;
  const std::string after = publish_packet(wire::kMqtt311, "sensors/after", 2, 10);
  const std::string stream = wire::encode_publish(big, wire::kMqtt311) +
                             publish_packet(wire::kMqtt311, "sensors/0", 0) + after;
  for (std::size_t at = 0; at < stream.size(); at += 700) {
    endpoint_.handler->on_data(std::string_view(stream).substr(at, 700));
  }
  EXPECT_EQ(browser_->take_packets(),
            (std::vector<std::string>{publish_packet(wire::kMqtt311, "sensors/0", 0), after}));
  const auto sent = broker_packets();
  ASSERT_EQ(sent.size(), 1u);
  std::string error;
  const auto puback = wire::parse_ack(sent[0], wire::kMqtt311, error);
  ASSERT_TRUE(puback) << error;
  EXPECT_EQ(puback->type, wire::PacketType::kPuback);
  EXPECT_EQ(puback->packet_id, 9);
  EXPECT_FALSE(browser_->close_code);
}

// MQTT 5 brokers are told the limit (CONNECT's Maximum Packet Size): one over it is a broken
// broker, and the session ends as before.
TEST_F(RelayTest, AnMqtt5DeliveryOverTheLimitEndsTheSession) {
  route_.max_packet_bytes = 1000;
  connect(wire::kMqtt5);
  wire::PublishPacket big;
  big.topic = "sensors/big";
  const std::string payload(5000, 'x');  // (the packet holds a view of it)
  big.payload = payload;
  endpoint_.handler->on_data(wire::encode_publish(big, wire::kMqtt5));
  ASSERT_TRUE(browser_->close_code);
  EXPECT_EQ(*browser_->close_code, CloseCode::kInternalError);
}

// MQTT 5: the broker is told the browser takes no topic aliases, so that every PUBLISH names
// its topic for the check; one that comes without a topic anyway ends the session.
TEST_F(RelayTest, TheBrokerMayNotHideADeliveredTopicBehindAnAlias) {
  start();
  std::string properties;
  wire::append_property(properties, wire::property::kTopicAliasMaximum, 10u);
  from_browser(connect_packet(wire::kMqtt5, "dash", 60, properties));
  std::string error;
  auto sent = wire::parse_connect(broker_packets().at(0), error);
  ASSERT_TRUE(sent) << error;
  EXPECT_FALSE(wire::find_property(sent->properties, wire::property::kTopicAliasMaximum));
  endpoint_.handler->on_data(wire::encode_connack(wire::ConnackPacket{}, wire::kMqtt5));
  browser_->take_packets();

  std::string alias;
  wire::append_property(alias, wire::property::kTopicAlias, 1u);
  endpoint_.handler->on_data(publish_packet(wire::kMqtt5, "", 0, 0, alias));
  const auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(wire::packet_type(got[0]), wire::PacketType::kDisconnect);
  ASSERT_TRUE(browser_->close_code);
}

}  // namespace
}  // namespace wsbridge::mqtt::testing
