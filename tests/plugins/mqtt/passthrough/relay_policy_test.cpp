// plugins/mqtt/passthrough/relay_client.cpp and relay_publish.cpp: the route's ACL on PUBLISH,
// and what the broker would drop a client for. (SUBSCRIBE: relay_subscribe_test.cpp.)
#include "relay_fixture.hpp"

namespace wsbridge::mqtt::testing {
namespace {

TEST_F(RelayTest, DeniedPublishIsAnsweredWithNotAuthorizedInMqtt5) {
  connect(wire::kMqtt5);
  from_browser(publish_packet(wire::kMqtt5, "users/bob/out/x", 1, 11));
  from_browser(publish_packet(wire::kMqtt5, "users/bob/out/x", 2, 12));
  from_browser(publish_packet(wire::kMqtt5, "users/bob/out/x", 0));
  EXPECT_TRUE(broker_packets().empty());
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 2u);
  std::string error;
  auto puback = wire::parse_ack(got[0], wire::kMqtt5, error);
  ASSERT_TRUE(puback) << error;
  EXPECT_EQ(puback->type, wire::PacketType::kPuback);
  EXPECT_EQ(puback->packet_id, 11);
  EXPECT_EQ(puback->code, wire::reason::kNotAuthorized);
  auto pubrec = wire::parse_ack(got[1], wire::kMqtt5, error);
  ASSERT_TRUE(pubrec) << error;
  EXPECT_EQ(pubrec->type, wire::PacketType::kPubrec);
  EXPECT_EQ(pubrec->code, wire::reason::kNotAuthorized);
  EXPECT_FALSE(browser_->close_code);

  const std::string allowed = publish_packet(wire::kMqtt5, "users/alice/out/x", 1, 13);
  from_browser(allowed);
  EXPECT_EQ(broker_packets(), (std::vector<std::string>{allowed}));
}

// An MQTT 5 client that named a Maximum Packet Size gets no packet of wsbridge's own over it
// [MQTT-3.1.2-24]: the Reason String goes first (a 45-byte PUBACK went to a 16-byte client).
TEST_F(RelayTest, OwnPacketsKeepWithinTheClientsMaximumPacketSize) {
  start();
  std::string properties;
  wire::append_property(properties, wire::property::kMaximumPacketSize, 16u);
  from_browser(connect_packet(wire::kMqtt5, "dash", 60, properties));
  broker_packets();
  endpoint_.handler->on_data(wire::encode_connack(wire::ConnackPacket{}, wire::kMqtt5));
  browser_->take_packets();
  from_browser(publish_packet(wire::kMqtt5, "users/bob/out/x", 1, 11));
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_LE(got[0].size(), 16u);
  std::string error;
  auto puback = wire::parse_ack(got[0], wire::kMqtt5, error);
  ASSERT_TRUE(puback) << error;
  EXPECT_EQ(puback->code, wire::reason::kNotAuthorized);
  EXPECT_TRUE(puback->properties.empty());
  // A DISCONNECT too (here: a topic alias).
  std::string alias;
  wire::append_property(alias, wire::property::kTopicAlias, 1u);
  from_browser(publish_packet(wire::kMqtt5, "users/alice/out/x", 0, 0, alias));
  got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_LE(got[0].size(), 16u);
  EXPECT_EQ(wire::parse_disconnect(got[0], wire::kMqtt5, error), wire::reason::kTopicAliasInvalid);
}

TEST_F(RelayTest, DeniedQos2PublishIsCompletedHereIn311) {
  connect(wire::kMqtt311);
  from_browser(publish_packet(wire::kMqtt311, "sensors/fake", 2, 5));
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  std::string error;
  EXPECT_EQ(wire::parse_ack(got[0], wire::kMqtt311, error)->type, wire::PacketType::kPubrec);
  // Its PUBREL is answered here too; another PUBREL goes to the broker.
  from_browser(wire::encode_ack({wire::PacketType::kPubrel, 5, 0, {}}, wire::kMqtt311));
  from_browser(wire::encode_ack({wire::PacketType::kPubrel, 6, 0, {}}, wire::kMqtt311));
  got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  auto pubcomp = wire::parse_ack(got[0], wire::kMqtt311, error);
  EXPECT_EQ(pubcomp->type, wire::PacketType::kPubcomp);
  EXPECT_EQ(pubcomp->packet_id, 5);
  auto sent = broker_packets();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(wire::parse_ack(sent[0], wire::kMqtt311, error)->packet_id, 6);
}

TEST_F(RelayTest, DeniedPublishDisconnectsWhenConfiguredIn311) {
  route_.disconnect_on_denied_publish = true;
  connect(wire::kMqtt311);
  from_browser(publish_packet(wire::kMqtt311, "sensors/fake", 1, 5));
  EXPECT_TRUE(broker_packets().empty());
  ASSERT_TRUE(browser_->close_code);
  EXPECT_EQ(*browser_->close_code, CloseCode::kPolicyViolation);
  EXPECT_NE(browser_->close_reason.find("sensors/fake"), std::string::npos);
}

TEST_F(RelayTest, TopicAliasesCannotHideATopic) {
  connect(wire::kMqtt5);
  std::string alias;
  wire::append_property(alias, wire::property::kTopicAlias, 1u);
  from_browser(publish_packet(wire::kMqtt5, "users/alice/out/x", 0, 0, alias));
  EXPECT_TRUE(broker_packets().empty());
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  std::string error;
  EXPECT_EQ(wire::parse_disconnect(got[0], wire::kMqtt5, error), wire::reason::kTopicAliasInvalid);
}

TEST_F(RelayTest, PublishRateLimitDisconnects) {
  route_.publish_rate = 1;
  route_.publish_burst = 3;
  connect(wire::kMqtt5);
  for (int i = 0; i < 3; ++i) from_browser(publish_packet(wire::kMqtt5, "users/alice/out/x", 0));
  EXPECT_EQ(broker_packets().size(), 3u);
  EXPECT_FALSE(browser_->close_code);
  from_browser(publish_packet(wire::kMqtt5, "users/alice/out/x", 0));
  EXPECT_TRUE(broker_packets().empty());
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  std::string error;
  EXPECT_EQ(wire::parse_disconnect(got[0], wire::kMqtt5, error), wire::reason::kMessageRateTooHigh);
}

// Packets ahead of the one that ends the session, in the same message, passed every check: the
// broker gets them before the link closes (they were dropped with it).
TEST_F(RelayTest, WhatPassedAheadOfTheFaultStillReachesTheBroker) {
  route_.publish_rate = 1;
  route_.publish_burst = 2;
  connect(wire::kMqtt311);
  std::string message;
  for (int i = 0; i < 3; ++i) message += publish_packet(wire::kMqtt311, "users/alice/out/x", 0);
  from_browser(message);  // the third is past the burst
  EXPECT_EQ(broker_packets().size(), 2u);
  EXPECT_TRUE(endpoint_.stream->closed);
  ASSERT_TRUE(browser_->close_code);

  fresh_browser();
  route_.publish_rate = 0;
  route_.disconnect_on_denied_publish = true;
  connect(wire::kMqtt311);
  from_browser(publish_packet(wire::kMqtt311, "users/alice/out/y", 1, 7) +
               publish_packet(wire::kMqtt311, "sensors/fake", 1, 8));
  auto sent = broker_packets();
  ASSERT_EQ(sent.size(), 1u);
  std::string error;
  EXPECT_EQ(wire::parse_publish(sent[0], wire::kMqtt311, error)->topic, "users/alice/out/y");
  EXPECT_EQ(*browser_->close_code, CloseCode::kPolicyViolation);

  fresh_browser();
  connect(wire::kMqtt311);
  from_browser(publish_packet(wire::kMqtt311, "users/alice/out/z", 0) + std::string("\x00\x00", 2));
  EXPECT_EQ(broker_packets().size(), 1u);
  EXPECT_EQ(*browser_->close_code, CloseCode::kProtocolError);
}

// [MQTT-3.2.0-1]: the first packet a client gets is CONNACK. What is answered here to packets it
// pipelined behind CONNECT waits for it; if the broker refuses the session, the refusal alone.
TEST_F(RelayTest, AnswersToPacketsPipelinedBehindConnectComeAfterTheConnack) {
  for (const bool accepted : {true, false}) {
    fresh_browser();
    start();
    from_browser(connect_packet(wire::kMqtt5, "dash") +
                 subscribe_packet(wire::kMqtt5, 4, {"secret/#"}) +
                 publish_packet(wire::kMqtt5, "secret/x", 1, 5));
    EXPECT_TRUE(browser_->take_packets().empty()) << "before the CONNACK";
    endpoint_.handler->on_connected();
    wire::ConnackPacket connack;
    connack.code = accepted ? 0 : 0x87;
    endpoint_.handler->on_data(wire::encode_connack(connack, wire::kMqtt5));
    const auto got = browser_->take_packets();
    ASSERT_FALSE(got.empty());
    EXPECT_EQ(wire::packet_type(got[0]), wire::PacketType::kConnack);
    if (accepted) {
      ASSERT_EQ(got.size(), 3u);
      EXPECT_EQ(wire::packet_type(got[1]), wire::PacketType::kSuback);
      EXPECT_EQ(wire::packet_type(got[2]), wire::PacketType::kPuback);
    } else {
      EXPECT_EQ(got.size(), 1u);
      EXPECT_EQ(*browser_->close_code, CloseCode::kPolicyViolation);
    }
  }
}

TEST_F(RelayTest, ServerOnlyPacketsFromTheBrowserAreAProtocolError) {
  connect(wire::kMqtt311);
  from_browser(wire::encode_suback({1, {}, {0}}, wire::kMqtt311));
  ASSERT_TRUE(browser_->close_code);
  EXPECT_EQ(*browser_->close_code, CloseCode::kProtocolError);
}

TEST_F(RelayTest, BadFixedHeaderFlagsOnAnUnparsedPacketNeverReachTheBroker) {
  connect(wire::kMqtt5);
  from_browser(std::string("\x40\x02\x00\x07", 4));  // a PUBACK: relayed as it is
  EXPECT_EQ(broker_packets().size(), 1U);
  from_browser(std::string("\xC3\x00", 2));  // PINGREQ with flags 3
  EXPECT_TRUE(broker_packets().empty());
  ASSERT_TRUE(browser_->close_code);
  EXPECT_EQ(*browser_->close_code, CloseCode::kProtocolError);
  const auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1U);
  std::string error;
  EXPECT_EQ(wire::parse_disconnect(got[0], wire::kMqtt5, error), wire::reason::kMalformedPacket);
}

TEST_F(RelayTest, AuthInMqtt5IsAProtocolErrorWithAValidDisconnectCode) {
  connect(wire::kMqtt5);
  from_browser(std::string("\xF0\x00", 2));
  EXPECT_TRUE(broker_packets().empty());
  const auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1U);
  std::string error;
  EXPECT_EQ(wire::parse_disconnect(got[0], wire::kMqtt5, error), wire::reason::kProtocolError)
      << error;
}

TEST_F(RelayTest, AuthIsAProtocolErrorBeforeMqtt5) {
  connect(wire::kMqtt311);
  from_browser(std::string("\xF0\x00", 2));
  EXPECT_TRUE(broker_packets().empty());
  ASSERT_TRUE(browser_->close_code);
  EXPECT_EQ(*browser_->close_code, CloseCode::kProtocolError);
}

// What the broker drops a client for is refused here, as the client's fault (close 1002; MQTT 5:
// DISCONNECT 0x81 first), never relayed: relayed, mosquitto closed the connection, and the client
// was told the broker had failed (1001, DISCONNECT 0x8B), counted as a broker failure.
TEST_F(RelayTest, WhatTheBrokerWouldDropTheClientForIsRefusedHere) {
  std::string control_in_property;
  wire::append_property(control_in_property, 0x03, std::string_view("text/\x01"));  // Content Type
  wire::UnsubscribePacket invalid_unsubscribe;
  invalid_unsubscribe.packet_id = 7;
  invalid_unsubscribe.filters = {"sensors/#", "a/#/b"};
  const struct {
    std::uint8_t version;
    std::string packet;
    const char* what;
  } cases[] = {
      {wire::kMqtt311, wire::encode_unsubscribe(invalid_unsubscribe, wire::kMqtt311), "a/#/b"},
      {wire::kMqtt5, wire::encode_unsubscribe({7, {}, {""}}, wire::kMqtt5), "empty filter"},
      {wire::kMqtt311, publish_packet(wire::kMqtt311, "sensors/\x01", 1, 1), "U+0001 in a topic"},
      {wire::kMqtt311, publish_packet(wire::kMqtt311, "sensors/\xC2\x85", 1, 1), "U+0085"},
      {wire::kMqtt5, subscribe_packet(wire::kMqtt5, 1, {"sensors/\xEF\xBF\xBF"}), "U+FFFF"},
      {wire::kMqtt5, subscribe_packet(wire::kMqtt5, 1, {"sensors/\xEF\xB7\x90"}), "U+FDD0"},
      {wire::kMqtt5, publish_packet(wire::kMqtt5, "sensors/a", 0, 0, control_in_property),
       "U+0001 in a property"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    fresh_browser();
    connect(c.version);
    from_browser(c.packet);
    EXPECT_TRUE(broker_packets().empty());
    ASSERT_TRUE(browser_->close_code);
    EXPECT_EQ(*browser_->close_code, CloseCode::kProtocolError);
    const auto got = browser_->take_packets();
    if (c.version == wire::kMqtt5) {
      ASSERT_EQ(got.size(), 1U);
      std::string error;
      EXPECT_EQ(wire::parse_disconnect(got[0], wire::kMqtt5, error),
                wire::reason::kMalformedPacket);
    } else {
      EXPECT_TRUE(got.empty());
    }
  }
  // A valid UNSUBSCRIBE still goes on.
  fresh_browser();
  connect(wire::kMqtt5);
  const std::string valid =
      wire::encode_unsubscribe({8, {}, {"sensors/#", "users/+/x"}}, wire::kMqtt5);
  from_browser(valid);
  EXPECT_EQ(broker_packets(), (std::vector<std::string>{valid}));
  EXPECT_FALSE(browser_->close_code);
}

// Request Problem Information 0: no Reason String on a refused publish's PUBACK or PUBREC
// [MQTT-3.1.2-29].
TEST_F(RelayTest, NoReasonStringForAClientThatAskedForNoProblemInformation) {
  start();
  std::string properties;
  wire::append_property(properties, wire::property::kRequestProblemInformation, 0u);
  from_browser(connect_packet(wire::kMqtt5, "dash", 60, properties));
  std::string error;
  auto sent = wire::parse_connect(broker_packets().at(0), error);
  ASSERT_TRUE(sent) << error;
  auto asked = wire::find_property(sent->properties, wire::property::kRequestProblemInformation);
  ASSERT_TRUE(asked) << "the broker is told too";
  EXPECT_EQ(asked->number, 0u);
  endpoint_.handler->on_data(wire::encode_connack(wire::ConnackPacket{}, wire::kMqtt5));
  browser_->take_packets();
  from_browser(publish_packet(wire::kMqtt5, "secret/a", 1, 1) +
               publish_packet(wire::kMqtt5, "secret/b", 2, 2));
  const auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 2u);
  for (const auto& packet : got) {
    auto ack = wire::parse_ack(packet, wire::kMqtt5, error);
    ASSERT_TRUE(ack) << error;
    EXPECT_EQ(ack->code, wire::reason::kNotAuthorized);
    EXPECT_TRUE(ack->properties.empty());
  }
}

}  // namespace
}  // namespace wsbridge::mqtt::testing
