// plugins/mqtt/passthrough/relay_delivery.cpp and relay_broker.cpp: what the broker delivers is
// checked against the connection's subscribe ACL (a persistent session may hold subscriptions an
// earlier connection made under a wider one); refused deliveries are acknowledged to the broker,
// never relayed. The broker's DISCONNECT, its acknowledgements in order with the relay's own, and
// the packets rebuilt for the client within its limits.
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

// MQTT 5: the broker's DISCONNECT is its word about this client (here: another connection took
// its client id, a second tab), relayed as it came and nothing after it. It ended in a second
// DISCONNECT of wsbridge's (0x8B "server shutting down"), close 1001, and a broker failure
// counted, which any client could inflate.
TEST_F(RelayTest, ABrokerDisconnectIsRelayedAloneAndIsNoBrokerFailure) {
  connect(wire::kMqtt5);
  const std::uint64_t failures_before = metrics_.broker_unavailable.value();
  const std::string taken_over = wire::encode_disconnect(wire::kMqtt5, 0x8E, "session taken over");
  endpoint_.handler->on_data(taken_over);
  endpoint_.handler->on_closed("connection closed by the broker");  // (then, as mosquitto does)
  EXPECT_EQ(browser_->take_packets(), (std::vector<std::string>{taken_over}));
  ASSERT_TRUE(browser_->close_code);
  EXPECT_EQ(*browser_->close_code, CloseCode::kNormal);
  EXPECT_EQ(metrics_.broker_unavailable.value(), failures_before);
  EXPECT_TRUE(endpoint_.stream->closed);

  // A client's fault the broker found (a malformed packet): 1002, no failure counted either.
  fresh_browser();
  connect(wire::kMqtt5);
  const std::string malformed =
      wire::encode_disconnect(wire::kMqtt5, wire::reason::kMalformedPacket);
  endpoint_.handler->on_data(malformed);
  endpoint_.handler->on_closed("connection closed by the broker");
  EXPECT_EQ(browser_->take_packets(), (std::vector<std::string>{malformed}));
  EXPECT_EQ(*browser_->close_code, CloseCode::kProtocolError);
  EXPECT_EQ(metrics_.broker_unavailable.value(), failures_before);
}

// mosquitto 2.0.11 drops the older of two connections with one client id without the DISCONNECT
// 0x8E MQTT 5 has for it: the route's registry tells the relay the session was taken over.
TEST_F(RelayTest, ASessionTakenOverIsToldSoWhenTheBrokerJustCloses) {
  SessionOwners owners;
  for (const std::uint8_t version : {wire::kMqtt311, wire::kMqtt5}) {
    SCOPED_TRACE(static_cast<int>(version));
    fresh_browser();
    start();
    relay_->track_sessions(&owners);
    from_browser(connect_packet(version, "dash"));
    endpoint_.handler->on_data(wire::encode_connack(wire::ConnackPacket{}, version));
    browser_->take_packets();
    const std::uint64_t failures_before = metrics_.broker_unavailable.value();
    const auto second_tab = owners.claim("alice:dash");  // (what a second relay does)
    endpoint_.handler->on_closed("connection closed by the broker");
    ASSERT_TRUE(browser_->close_code);
    EXPECT_EQ(*browser_->close_code, CloseCode::kNormal);
    EXPECT_EQ(metrics_.broker_unavailable.value(), failures_before);
    const auto got = browser_->take_packets();
    if (version == wire::kMqtt5) {
      ASSERT_EQ(got.size(), 1u);
      std::string error;
      EXPECT_EQ(wire::parse_disconnect(got[0], wire::kMqtt5, error),
                wire::reason::kSessionTakenOver);
    } else {
      EXPECT_TRUE(got.empty());
    }
    relay_.reset();  // (the first tab's relay goes: the second keeps its claim)
    EXPECT_FALSE(second_tab->load());
  }
  // The broker closing on a relay whose session nobody took is a broker failure, as before.
  fresh_browser();
  start();
  relay_->track_sessions(&owners);
  from_browser(connect_packet(wire::kMqtt5, "solo"));
  endpoint_.handler->on_data(wire::encode_connack(wire::ConnackPacket{}, wire::kMqtt5));
  endpoint_.handler->on_closed("connection closed by the broker");
  EXPECT_EQ(*browser_->close_code, CloseCode::kGoingAway);
  relay_.reset();  // (it lets go of its claim in `owners`, which goes first)
}

// The newer connection's side: a CONNECT the broker refused took nothing over (the older one is
// unmarked again), one whose browser left before its CONNACK did (the broker acted on it).
TEST_F(RelayTest, ANewerConnectTakesTheSessionOverUnlessTheBrokerRefusedIt) {
  SessionOwners owners;
  const auto first_tab = owners.claim("alice:dash");
  start();
  relay_->track_sessions(&owners);
  from_browser(connect_packet(wire::kMqtt5, "dash"));
  EXPECT_TRUE(first_tab->load());
  wire::ConnackPacket refused;
  refused.code = wire::reason::kNotAuthorized;
  endpoint_.handler->on_data(wire::encode_connack(refused, wire::kMqtt5));
  EXPECT_FALSE(first_tab->load()) << "refused: the first tab still has its session";
  relay_.reset();
  EXPECT_FALSE(first_tab->load());

  fresh_browser();
  start();
  relay_->track_sessions(&owners);
  from_browser(connect_packet(wire::kMqtt5, "dash"));
  EXPECT_TRUE(first_tab->load());
  relay_.reset();  // the browser left before the CONNACK
  EXPECT_TRUE(first_tab->load()) << "its CONNECT reached the broker: the first tab was taken over";
}

// A refused publish is answered here, but not ahead of the broker's answers to the publishes the
// client sent before it [MQTT-4.6.0-2]: PUBACK 2 came before PUBACK 1.
TEST_P(RelayDeliveryTest, ARefusedPublishIsAcknowledgedInOrderBehindTheBrokers) {
  connect(version());
  const auto ack = [&](wire::PacketType type, std::uint16_t id) {
    return wire::encode_ack({type, id, 0, {}}, version());
  };
  const auto acked = [&](const std::vector<std::string>& packets) {
    std::vector<std::pair<wire::PacketType, std::uint16_t>> out;
    std::string error;
    for (const auto& p : packets) {
      auto a = wire::parse_ack(p, version(), error);
      EXPECT_TRUE(a) << error;
      if (a) out.emplace_back(a->type, a->packet_id);
    }
    return out;
  };
  using P = wire::PacketType;
  using Acks = std::vector<std::pair<wire::PacketType, std::uint16_t>>;
  // 1 allowed (QoS 1), 2 refused (QoS 1), 3 allowed (QoS 2), 4 refused (QoS 2), 5 refused.
  from_browser(publish_packet(version(), "users/alice/out/a", 1, 1) +
               publish_packet(version(), "secret/b", 1, 2) +
               publish_packet(version(), "users/alice/out/c", 2, 3) +
               publish_packet(version(), "secret/d", 2, 4) +
               publish_packet(version(), "secret/e", 1, 5));
  EXPECT_EQ(broker_packets().size(), 2u);
  EXPECT_TRUE(browser_->take_packets().empty()) << "refused ones wait for the broker's answer to 1";
  from_broker(ack(P::kPuback, 1));
  EXPECT_EQ(acked(browser_->take_packets()), (Acks{{P::kPuback, 1}, {P::kPuback, 2}}));
  from_broker(ack(P::kPubrec, 3));
  EXPECT_EQ(acked(browser_->take_packets()),
            (Acks{{P::kPubrec, 3}, {P::kPubrec, 4}, {P::kPuback, 5}}));
  // With nothing owed by the broker, a refused one is answered at once.
  from_browser(publish_packet(version(), "secret/f", 1, 6));
  EXPECT_EQ(acked(browser_->take_packets()), (Acks{{P::kPuback, 6}}));
  EXPECT_FALSE(browser_->close_code);
}

// The SUBACK wsbridge merges holds a code for every filter the client asked for, where the
// broker's held fewer: it keeps within the client's Maximum Packet Size (Reason String and User
// Properties left out, else not sent [MQTT-3.1.2-25]); so does a CONNACK given an Assigned Client
// Identifier.
TEST_F(RelayTest, RebuiltSubackAndConnackKeepWithinTheClientsMaximumPacketSize) {
  start();
  std::string limit;
  wire::append_property(limit, wire::property::kMaximumPacketSize, 30u);
  from_browser(connect_packet(wire::kMqtt5, "dash", 60, limit));
  broker_packets();
  endpoint_.handler->on_data(wire::encode_connack(wire::ConnackPacket{}, wire::kMqtt5));
  browser_->take_packets();
  wire::SubscribePacket subscribe;
  subscribe.packet_id = 3;
  subscribe.entries.push_back({"sensors/#", 0});
  for (int i = 0; i < 5; ++i) subscribe.entries.push_back({"secret/" + std::to_string(i), 0});
  from_browser(wire::encode_subscribe(subscribe, wire::kMqtt5));
  ASSERT_EQ(broker_packets().size(), 1u);
  wire::AckListPacket suback;
  suback.packet_id = 3;
  suback.codes = {0};
  wire::append_property(suback.properties, wire::property::kReasonString,
                        std::string_view("a reason the broker gave"));
  endpoint_.handler->on_data(wire::encode_suback(suback, wire::kMqtt5));
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_LE(got[0].size(), 30u);
  std::string error;
  auto merged = wire::parse_suback(got[0], wire::kMqtt5, error);
  ASSERT_TRUE(merged) << error;
  EXPECT_EQ(merged->codes.size(), 6u);
  EXPECT_TRUE(merged->properties.empty());
  // Every filter refused: the SUBACK answered here alone keeps within the limit too, else it is
  // not sent. (It went out: 15 bytes to a client that took 12.)
  subscribe.packet_id = 4;
  subscribe.entries.erase(subscribe.entries.begin());  // the 5 secret/ ones: 5 codes fit in 30
  from_browser(wire::encode_subscribe(subscribe, wire::kMqtt5));
  got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(wire::parse_suback(got[0], wire::kMqtt5, error)->codes.size(), 5u);
  for (int i = 5; i < 30; ++i) subscribe.entries.push_back({"secret/" + std::to_string(i), 0});
  subscribe.packet_id = 5;  // 30 codes: a 35-byte SUBACK
  from_browser(wire::encode_subscribe(subscribe, wire::kMqtt5));
  EXPECT_TRUE(browser_->take_packets().empty()) << "over the client's 30 bytes";
  EXPECT_TRUE(broker_packets().empty());
  EXPECT_FALSE(browser_->close_code);

  // 12 bytes: no CONNACK carrying "c" and 16 hex digits fits; the client is told 0x95 if that
  // fits (it does), and closed.
  fresh_browser();
  start();
  limit.clear();
  wire::append_property(limit, wire::property::kMaximumPacketSize, 12u);
  from_browser(connect_packet(wire::kMqtt5, "", 60, limit));
  broker_packets();
  endpoint_.handler->on_data(wire::encode_connack(wire::ConnackPacket{}, wire::kMqtt5));
  got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_LE(got[0].size(), 12u);
  EXPECT_EQ(wire::parse_connack(got[0], wire::kMqtt5, error)->code, wire::reason::kPacketTooLarge);
  EXPECT_EQ(*browser_->close_code, CloseCode::kMessageTooBig);
}

// A refused publish's Reason String names its topic and is cut to 256 bytes: cut inside a
// character, the PUBACK was malformed [MQTT-1.5.4-1] and the client dropped the connection
// instead of reading why. The cut falls between characters.
TEST_F(RelayTest, ARefusalsReasonStringIsCutBetweenCharacters) {
  connect(wire::kMqtt5);
  std::string topic = "users/bob/out/x";
  for (int i = 0; i < 150; ++i) topic += "\xc3\xa9";  // "é": byte 256 of the reason is inside one
  from_browser(publish_packet(wire::kMqtt5, topic, 1, 21));
  EXPECT_TRUE(broker_packets().empty());
  const auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  std::string error;
  const auto puback = wire::parse_ack(got[0], wire::kMqtt5, error);
  ASSERT_TRUE(puback) << error;
  EXPECT_EQ(puback->code, wire::reason::kNotAuthorized);
  ASSERT_TRUE(wire::parse_properties(puback->properties, error)) << error;
  const auto reason = wire::find_property(puback->properties, wire::property::kReasonString);
  ASSERT_TRUE(reason);
  EXPECT_EQ(reason->text.size(), 255u);
  EXPECT_TRUE(reason->text.starts_with("publish to \"users/bob/out/x\xc3\xa9"));
  EXPECT_FALSE(browser_->close_code);
}

}  // namespace
}  // namespace wsbridge::mqtt::testing
