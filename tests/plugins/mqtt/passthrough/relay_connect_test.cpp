// plugins/mqtt/passthrough/relay.cpp and relay_client.cpp: CONNECT and CONNACK, the client id,
// credentials and the will, the stream cut anywhere (relay_liveness_test.cpp: the rest).
#include <set>

#include "relay_fixture.hpp"

namespace wsbridge::mqtt::testing {
namespace {

TEST_F(RelayTest, ConnectIsRewrittenWithForcedIdServiceCredentialsAndClampedKeepalive) {
  start();
  from_browser(connect_packet(wire::kMqtt311, "dash", 0));
  auto sent = broker_packets();
  ASSERT_EQ(sent.size(), 1u);
  std::string error;
  auto c = wire::parse_connect(sent[0], error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->client_id, "alice:dash");
  EXPECT_EQ(c->username, "bridge");
  EXPECT_EQ(c->password, "service-secret");
  EXPECT_EQ(c->keepalive, 300);                   // 0 ("never") becomes keepalive_max
  EXPECT_TRUE(browser_->take_packets().empty());  // nothing until the broker answers
}

// "c" and 16 lower-case hex digits.
bool is_assigned_form(const std::string& id) {
  return id.size() == 17 && id[0] == 'c' &&
         id.find_first_not_of("0123456789abcdef", 1) == std::string::npos;
}

TEST_F(RelayTest, EmptyClientIdGetsAnUnguessableOneInTheUsersNamespace) {
  // Not the connection id: another client could name that one first and take the session over.
  std::set<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    fresh_browser();
    start();
    from_browser(connect_packet(wire::kMqtt311, ""));
    std::string error;
    auto c = wire::parse_connect(broker_packets().at(0), error);
    ASSERT_TRUE(c) << error;
    ASSERT_TRUE(c->client_id.starts_with("alice:")) << c->client_id;
    const std::string assigned = c->client_id.substr(6);
    EXPECT_TRUE(is_assigned_form(assigned)) << assigned;
    ids.insert(assigned);
  }
  EXPECT_EQ(ids.size(), 3u) << "the same connection id (42) each time, never the same client id";
}

TEST_F(RelayTest, Mqtt5ClientWithAnEmptyIdIsToldTheOneItGot) {
  start();
  from_browser(connect_packet(wire::kMqtt5, ""));
  std::string error;
  auto c = wire::parse_connect(broker_packets().at(0), error);
  ASSERT_TRUE(c) << error;
  endpoint_.handler->on_connected();
  endpoint_.handler->on_data(wire::encode_connack(wire::ConnackPacket{}, wire::kMqtt5));
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1U);
  auto connack = wire::parse_connack(got[0], wire::kMqtt5, error);
  ASSERT_TRUE(connack) << error;
  auto assigned = wire::find_property(connack->properties, wire::property::kAssignedClientId);
  ASSERT_TRUE(assigned);
  // What the browser sends next time to be the same client at the broker.
  EXPECT_TRUE(is_assigned_form(std::string(assigned->text))) << assigned->text;
  EXPECT_EQ(c->client_id, "alice:" + std::string(assigned->text));
}

TEST_F(RelayTest, Mqtt5ClientWithItsOwnIdIsAssignedNothing) {
  start();
  from_browser(connect_packet(wire::kMqtt5, "dash"));
  endpoint_.handler->on_connected();
  endpoint_.handler->on_data(wire::encode_connack(wire::ConnackPacket{}, wire::kMqtt5));
  std::string error;
  auto connack = wire::parse_connack(browser_->take_packets().at(0), wire::kMqtt5, error);
  ASSERT_TRUE(connack) << error;
  EXPECT_FALSE(wire::find_property(connack->properties, wire::property::kAssignedClientId));
}

TEST_F(RelayTest, EmptyIdWithAPersistentSessionIsRejectedIn311) {
  start();
  wire::ConnectPacket c;
  c.version = wire::kMqtt311;
  c.clean_start = false;
  from_browser(wire::encode_connect(c));
  EXPECT_TRUE(broker_packets().empty());
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1U);
  std::string error;
  auto connack = wire::parse_connack(got[0], wire::kMqtt311, error);
  ASSERT_TRUE(connack) << error;
  EXPECT_EQ(connack->code, wire::connack311::kIdentifierRejected);
  ASSERT_TRUE(browser_->close_code);
}

TEST_F(RelayTest, Mqtt5ClampedKeepaliveIsAnnouncedAndTopicAliasesDisabled) {
  start();
  from_browser(connect_packet(wire::kMqtt5, "dash", 1000));
  std::string error;
  auto c = wire::parse_connect(broker_packets().at(0), error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->keepalive, 300);
  auto size = wire::find_property(c->properties, wire::property::kMaximumPacketSize);
  ASSERT_TRUE(size);
  EXPECT_EQ(size->number, route_.max_packet_bytes);

  wire::ConnackPacket ack;
  wire::append_property(ack.properties, wire::property::kTopicAliasMaximum, 10u);
  endpoint_.handler->on_data(wire::encode_connack(ack, wire::kMqtt5));
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  auto connack = wire::parse_connack(got[0], wire::kMqtt5, error);
  ASSERT_TRUE(connack) << error;
  EXPECT_FALSE(wire::find_property(connack->properties, wire::property::kTopicAliasMaximum));
  auto keepalive = wire::find_property(connack->properties, wire::property::kServerKeepAlive);
  ASSERT_TRUE(keepalive);
  EXPECT_EQ(keepalive->number, 300u);

  // Clamped up too (1 s to keepalive_min): the broker times the client out by 5 s, and sends its
  // will by then, which the client must know [MQTT-3.2.2-22]. Its own keepalive kept: nothing.
  for (const std::uint16_t asked : {1, 60}) {
    fresh_browser();
    start();
    from_browser(connect_packet(wire::kMqtt5, "dash", asked));
    EXPECT_EQ(wire::parse_connect(broker_packets().at(0), error)->keepalive, asked == 1 ? 5 : 60);
    endpoint_.handler->on_data(wire::encode_connack(wire::ConnackPacket{}, wire::kMqtt5));
    got = browser_->take_packets();
    ASSERT_EQ(got.size(), 1u);
    connack = wire::parse_connack(got[0], wire::kMqtt5, error);
    keepalive = wire::find_property(connack->properties, wire::property::kServerKeepAlive);
    EXPECT_EQ(keepalive ? std::optional<std::uint32_t>(keepalive->number) : std::nullopt,
              asked == 1 ? std::optional<std::uint32_t>(5) : std::nullopt);
  }
}

TEST_F(RelayTest, PacketsSplitAcrossMessagesAndSeveralInOneMessage) {
  connect(wire::kMqtt311);
  const std::string a = publish_packet(wire::kMqtt311, "users/alice/out/1", 0);
  const std::string b = publish_packet(wire::kMqtt311, "users/alice/out/2", 0);
  const std::string both = a + b;
  // Every cut of two packets into two messages delivers both, whole and in order.
  for (std::size_t cut = 0; cut <= both.size(); ++cut) {
    from_browser(both.substr(0, cut));
    from_browser(both.substr(cut));
    EXPECT_EQ(broker_packets(), (std::vector<std::string>{a, b})) << "cut at " << cut;
  }
  EXPECT_FALSE(browser_->close_code);
}

TEST_F(RelayTest, FirstPacketMustBeConnect) {
  start();
  from_browser(publish_packet(wire::kMqtt311, "users/alice/out/1", 0));
  ASSERT_TRUE(browser_->close_code);
  EXPECT_EQ(*browser_->close_code, CloseCode::kProtocolError);
  EXPECT_EQ(endpoint_.stream, nullptr);  // no broker connection for it
}

// [MQTT-3.1.2-2]: a level we do not speak gets CONNACK 0x01 before the close, so that a client
// able to speak an older one can try it; a name that is not MQTT's gets the close alone.
TEST_F(RelayTest, AnUnsupportedProtocolLevelIsAnsweredWithConnack0x01) {
  // CONNECT: protocol name, level, flags (clean), keep-alive 60, client id "d".
  auto connect_bytes = [](std::string_view name, char level) {
    std::string body = std::string{0, static_cast<char>(name.size())} + std::string(name) +
                       std::string{level, 0x02, 0, 60, 0, 1, 'd'};
    return std::string{0x10, static_cast<char>(body.size())} + body;
  };
  for (const auto& [name, level] :
       {std::pair<std::string_view, char>{"MQTT", 6}, {"MQTT", 3}, {"MQIsdp", 4}}) {
    fresh_browser();
    start();
    from_browser(connect_bytes(name, level));
    auto got = browser_->take_packets();
    ASSERT_EQ(got.size(), 1u) << name << " " << int{level};
    std::string error;
    auto connack = wire::parse_connack(got[0], wire::kMqtt311, error);
    ASSERT_TRUE(connack) << error;
    EXPECT_EQ(connack->code, wire::connack311::kUnacceptableProtocol);
    EXPECT_EQ(*browser_->close_code, CloseCode::kProtocolError);
    EXPECT_EQ(endpoint_.stream, nullptr);
  }
  fresh_browser();
  start();
  from_browser(connect_bytes("MQTX", 4));
  EXPECT_TRUE(browser_->take_packets().empty());
  EXPECT_EQ(*browser_->close_code, CloseCode::kProtocolError);
}

// Client mistakes the broker would close the connection for are refused here, as the client's:
// passed on, they read as the broker failing (close 1001 or 1013, counted in its failures).
TEST_F(RelayTest, ProtocolErrorsTheBrokerWouldCloseForAreTheClientsOwn) {
  for (const std::uint8_t id :
       {wire::property::kReceiveMaximum, wire::property::kMaximumPacketSize}) {
    fresh_browser();
    start();
    std::string zero;
    if (id == wire::property::kReceiveMaximum) {
      wire::append_property(zero, id, static_cast<std::uint16_t>(0));
    } else {
      wire::append_property(zero, id, static_cast<std::uint32_t>(0));
    }
    from_browser(connect_packet(wire::kMqtt5, "dash", 60, zero));
    auto got = browser_->take_packets();
    ASSERT_EQ(got.size(), 1u);
    std::string error;
    EXPECT_EQ(wire::parse_connack(got[0], wire::kMqtt5, error)->code, wire::reason::kProtocolError);
    EXPECT_EQ(*browser_->close_code, CloseCode::kProtocolError);
    EXPECT_EQ(endpoint_.stream, nullptr);
  }
  fresh_browser();
  connect(wire::kMqtt5);
  from_browser(std::string("\x40\x01\x00", 3));  // a PUBACK one byte short of its packet id
  EXPECT_TRUE(broker_packets().empty());
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  std::string error;
  EXPECT_EQ(wire::parse_disconnect(got[0], wire::kMqtt5, error), wire::reason::kMalformedPacket);
  EXPECT_EQ(*browser_->close_code, CloseCode::kProtocolError);
}

// Answers kept for the CONNACK are bounded: an MQTT 5 refusal carries a reason, several times
// the size of a minimal PUBLISH, so one message of refused publishes held megabytes per client.
TEST_F(RelayTest, AClientPilingUpRefusalsBeforeItsConnackIsClosed) {
  start();
  std::string message = connect_packet(wire::kMqtt5, "dash");
  for (int i = 1; i <= 4000; ++i) {
    message += publish_packet(wire::kMqtt5, "n", 1, static_cast<std::uint16_t>(i));
  }
  from_browser(message);
  EXPECT_TRUE(browser_->take_packets().empty());
  ASSERT_TRUE(browser_->close_code);
  EXPECT_EQ(*browser_->close_code, CloseCode::kPolicyViolation);
  EXPECT_NE(browser_->close_reason.find("before the broker's CONNACK"), std::string::npos);
}

// Section 2.2.2.2: a property twice (but User Property), or a one-byte property other than 0 or
// 1, is a Protocol Error: refused here as the client's (passed on, the broker closed, which read
// as the broker failing).
TEST_F(RelayTest, PropertiesTwiceOrOutOfRangeAreTheClientsMistake) {
  std::string twice;
  wire::append_property(twice, wire::property::kReceiveMaximum, 5u);
  wire::append_property(twice, wire::property::kReceiveMaximum, 5u);
  std::string out_of_range;
  wire::append_property(out_of_range, 0x17, 2u);  // Request Problem Information
  for (const std::string& properties : {twice, out_of_range}) {
    fresh_browser();
    start();
    from_browser(connect_packet(wire::kMqtt5, "dash", 60, properties));
    auto got = browser_->take_packets();
    ASSERT_EQ(got.size(), 1u);
    std::string error;
    EXPECT_EQ(wire::parse_connack(got[0], wire::kMqtt5, error)->code,
              wire::reason::kMalformedPacket);
    EXPECT_EQ(*browser_->close_code, CloseCode::kProtocolError);
    EXPECT_EQ(endpoint_.stream, nullptr);
  }
  // User Property may repeat.
  const std::string user_property("\x26\x00\x01k\x00\x01v", 7);  // k=v
  const std::string users = user_property + user_property;
  fresh_browser();
  start();
  from_browser(connect_packet(wire::kMqtt5, "dash", 60, users));
  EXPECT_FALSE(browser_->close_code) << browser_->close_reason;
  // A PUBACK with its Reason String twice.
  fresh_browser();
  connect(wire::kMqtt5);
  from_browser(std::string("\x40\x0c\x00\x05\x00\x08\x1f\x00\x01\x61\x1f\x00\x01\x62", 14));
  EXPECT_TRUE(broker_packets().empty());
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  std::string error;
  EXPECT_EQ(wire::parse_disconnect(got[0], wire::kMqtt5, error), wire::reason::kMalformedPacket);
}

TEST_F(RelayTest, OversizedPacketIsRefusedBeforeItIsBuffered) {
  route_.max_packet_bytes = 1024;
  connect(wire::kMqtt5);
  // Only the fixed header of a 1 MiB PUBLISH arrives: its length alone is enough.
  from_browser(std::string("\x30\x80\x80\x40", 4));
  ASSERT_TRUE(browser_->close_code);
  EXPECT_EQ(*browser_->close_code, CloseCode::kMessageTooBig);
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  std::string error;
  EXPECT_EQ(wire::parse_disconnect(got[0], wire::kMqtt5, error), wire::reason::kPacketTooLarge);
  EXPECT_TRUE(broker_packets().empty());
}

// A packet split over messages is held until whole: the relay tells the core what it holds
// (Connection::hold_inbound, bounded by [limits] inbound_bytes_in_flight) and gives it back.
TEST_F(RelayTest, PartialPacketsAreHeldAgainstTheServersBound) {
  connect(wire::kMqtt311);
  const std::string packet = publish_packet(wire::kMqtt311, "users/alice/out/1", 0);
  from_browser(packet.substr(0, 10));
  EXPECT_EQ(browser_->held, 10u);
  from_browser(packet.substr(10));
  EXPECT_EQ(browser_->held, 0u);
  EXPECT_EQ(broker_packets(), (std::vector<std::string>{packet}));
  // Whole packets hold nothing, so nothing is asked.
  browser_->holds.clear();
  from_browser(packet + packet);
  EXPECT_TRUE(browser_->holds.empty());
  EXPECT_EQ(broker_packets().size(), 2u);
}

TEST_F(RelayTest, PartialPacketRefusedByTheServersBoundDisconnectsAsServerBusy) {
  connect(wire::kMqtt5);
  browser_->hold_limit = 8;
  const std::string packet = publish_packet(wire::kMqtt5, "users/alice/out/1", 0);
  from_browser(packet.substr(0, 9));
  ASSERT_TRUE(browser_->close_code);
  EXPECT_EQ(*browser_->close_code, CloseCode::kTryAgainLater);
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  std::string error;
  EXPECT_EQ(wire::parse_disconnect(got[0], wire::kMqtt5, error), wire::reason::kServerBusy);
  EXPECT_TRUE(broker_packets().empty());
}

TEST_F(RelayTest, TextMessagesAreRefused) {
  connect(wire::kMqtt311);
  relay_->from_client(Frame::text("hello"));
  ASSERT_TRUE(browser_->close_code);
  EXPECT_EQ(*browser_->close_code, CloseCode::kProtocolError);
}

TEST_F(RelayTest, CredentialInConnectPasswordWhenTheUpgradeHadNone) {
  browser_->who.user.clear();
  browser_->who.credential_pending = true;
  start();
  wire::ConnectPacket c;
  c.version = wire::kMqtt5;
  c.client_id = "dash";
  c.username = "x";
  c.password = "bad-token";
  from_browser(wire::encode_connect(c));
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  std::string error;
  auto refusal = wire::parse_connack(got[0], wire::kMqtt5, error);
  ASSERT_TRUE(refusal) << error;
  EXPECT_EQ(refusal->code, wire::reason::kBadUserNameOrPassword);
  EXPECT_EQ(*browser_->close_code, CloseCode::kPolicyViolation);
  EXPECT_EQ(endpoint_.stream, nullptr);

  browser_ = std::make_shared<FakeBrowser>();
  browser_->who.credential_pending = true;
  start();
  c.password = "good-token";
  from_browser(wire::encode_connect(c));
  EXPECT_EQ(browser_->checked_credential, "good-token");
  auto forwarded = wire::parse_connect(broker_packets().at(0), error);
  ASSERT_TRUE(forwarded) << error;
  EXPECT_EQ(forwarded->client_id, "carol:dash");  // the user the token proved
  EXPECT_EQ(forwarded->password, "service-secret");
}

TEST_F(RelayTest, MissingPasswordWhenOneIsNeededIsRefusedIn311) {
  browser_->who.user.clear();
  browser_->who.credential_pending = true;
  start();
  wire::ConnectPacket c;
  c.client_id = "dash";
  from_browser(wire::encode_connect(c));
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  std::string error;
  auto refusal = wire::parse_connack(got[0], wire::kMqtt311, error);
  ASSERT_TRUE(refusal) << error;
  EXPECT_EQ(refusal->code, wire::connack311::kBadUserNameOrPassword);
}

TEST_F(RelayTest, WillOutsideThePublishAclRefusesTheConnect) {
  start();
  wire::ConnectPacket c;
  c.client_id = "dash";
  c.will = wire::Will{{}, "sensors/fake", "gone", 1, false};
  from_browser(wire::encode_connect(c));
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  std::string error;
  EXPECT_EQ(wire::parse_connack(got[0], wire::kMqtt311, error)->code,
            wire::connack311::kNotAuthorized);
  EXPECT_EQ(endpoint_.stream, nullptr);
}

// An identity MQTT strings may not hold (a certificate's CN with U+0085, a C1 control) gave a
// client id the broker refused: the client was told "server unavailable", for ever. It is
// percent-encoded in the client id (and fills no ACL pattern: acl_test.cpp).
TEST_F(RelayTest, AnIdentityWithAControlCharacterIsEscapedInTheClientId) {
  browser_->who.user = "bob\xC2\x85";
  start();
  from_browser(connect_packet(wire::kMqtt311, "dash"));
  std::string error;
  auto c = wire::parse_connect(broker_packets().at(0), error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->client_id, "bob%C2%85:dash");
}

}  // namespace
}  // namespace wsbridge::mqtt::testing
