// plugins/mqtt/passthrough/relay_client.cpp and relay_broker.cpp: the route's ACL and bounds on
// SUBSCRIBE, the SUBACK put together from the broker's codes and those decided here, and packet
// ids in flight.
#include "relay_fixture.hpp"

namespace wsbridge::mqtt::testing {
namespace {

TEST_F(RelayTest, RefusedFiltersNeverReachTheBrokerAndTheSubackIsMerged) {
  connect(wire::kMqtt311);
  from_browser(subscribe_packet(wire::kMqtt311, 7,
                                {"sensors/+/temp", "users/bob/#", "users/alice/in", "#"}));
  auto sent = broker_packets();
  ASSERT_EQ(sent.size(), 1u);
  std::string error;
  auto forwarded = wire::parse_subscribe(sent[0], wire::kMqtt311, error);
  ASSERT_TRUE(forwarded) << error;
  ASSERT_EQ(forwarded->entries.size(), 2u);
  EXPECT_EQ(forwarded->entries[0].filter, "sensors/+/temp");
  EXPECT_EQ(forwarded->entries[1].filter, "users/alice/in");
  EXPECT_EQ(forwarded->packet_id, 7);

  endpoint_.handler->on_data(wire::encode_suback({7, {}, {1, 0}}, wire::kMqtt311));
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(suback_codes(got[0], wire::kMqtt311), (std::vector<std::uint8_t>{1, 0x80, 0, 0x80}));
}

TEST_F(RelayTest, AllFiltersRefusedIsAnsweredHereInMqtt5) {
  connect(wire::kMqtt5);
  from_browser(subscribe_packet(wire::kMqtt5, 9, {"$SYS/#", "$share/g/sensors/#", "a/#/b"}));
  EXPECT_TRUE(broker_packets().empty());
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  // Not allowed, not allowed ($share needs a pattern naming it), invalid filter.
  EXPECT_EQ(suback_codes(got[0], wire::kMqtt5),
            (std::vector<std::uint8_t>{0x87, 0x87, wire::reason::kTopicFilterInvalid}));
}

TEST_F(RelayTest, SharedSubscriptionAllowedByAPatternThatNamesIt) {
  connect(wire::kMqtt5);
  const std::string subscribe = subscribe_packet(wire::kMqtt5, 3, {"$share/workers/jobs/#"});
  from_browser(subscribe);
  EXPECT_EQ(broker_packets(), (std::vector<std::string>{subscribe}));
}

// What one connection may have subscribed at the broker: filters past the route's bounds are
// refused in the SUBACK (MQTT 5: 0x97 quota exceeded) and never sent; UNSUBSCRIBE gives room back.
TEST_F(RelayTest, SubscriptionBoundsRefuseFiltersPastThemUntilUnsubscribed) {
  route_.subscriptions = SubscriptionBounds{2, 1000, 1000};
  connect(wire::kMqtt5);
  from_browser(subscribe_packet(wire::kMqtt5, 1, {"sensors/a", "sensors/b", "sensors/c"}));
  auto sent = broker_packets();
  ASSERT_EQ(sent.size(), 1u);
  std::string error;
  auto forwarded = wire::parse_subscribe(sent[0], wire::kMqtt5, error);
  ASSERT_TRUE(forwarded) << error;
  ASSERT_EQ(forwarded->entries.size(), 2u);
  endpoint_.handler->on_data(wire::encode_suback({1, {}, {1, 1}}, wire::kMqtt5));
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(suback_codes(got[0], wire::kMqtt5),
            (std::vector<std::uint8_t>{1, 1, wire::reason::kQuotaExceeded}));
  // A filter already held adds nothing: subscribing it again (a QoS change) is relayed.
  const std::string again = subscribe_packet(wire::kMqtt5, 2, {"sensors/a"});
  from_browser(again);
  EXPECT_EQ(broker_packets(), (std::vector<std::string>{again}));
  // UNSUBSCRIBE (relayed as it came) frees a place.
  wire::UnsubscribePacket unsubscribe;
  unsubscribe.packet_id = 3;
  unsubscribe.filters = {"sensors/b", "never/subscribed"};
  const std::string unsub = wire::encode_unsubscribe(unsubscribe, wire::kMqtt5);
  from_browser(unsub);
  EXPECT_EQ(broker_packets(), (std::vector<std::string>{unsub}));
  const std::string third = subscribe_packet(wire::kMqtt5, 4, {"sensors/c"});
  from_browser(third);
  EXPECT_EQ(broker_packets(), (std::vector<std::string>{third}));
}

TEST_F(RelayTest, SubscriptionBytesAndLevelsAreBoundedTooIn311) {
  route_.subscriptions = SubscriptionBounds{100, 30, 6};
  connect(wire::kMqtt311);
  // 9 bytes and 2 levels; then 23 bytes (32 in all: over 30); then 5 levels (7 in all: over 6).
  from_browser(
      subscribe_packet(wire::kMqtt311, 5, {"sensors/a", "sensors/bbbbbbbbbbbbbbb", "a/b/c/d/e"}));
  auto sent = broker_packets();
  ASSERT_EQ(sent.size(), 1u);
  std::string error;
  auto forwarded = wire::parse_subscribe(sent[0], wire::kMqtt311, error);
  ASSERT_TRUE(forwarded) << error;
  ASSERT_EQ(forwarded->entries.size(), 1u);
  EXPECT_EQ(forwarded->entries[0].filter, "sensors/a");
  endpoint_.handler->on_data(wire::encode_suback({5, {}, {1}}, wire::kMqtt311));
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(suback_codes(got[0], wire::kMqtt311), (std::vector<std::uint8_t>{1, 0x80, 0x80}));
  // Within both bounds still: 9 + 5 bytes, 2 + 2 levels.
  const std::string fits = subscribe_packet(wire::kMqtt311, 6, {"sensors/b"});
  from_browser(fits);
  EXPECT_EQ(broker_packets(), (std::vector<std::string>{fits}));
}

TEST_F(RelayTest, CredentialAclNarrowsTheRoutes) {
  browser_->who.acl = TopicAcl{{"sensors/kitchen/#"}, {}};
  connect(wire::kMqtt311);
  from_browser(subscribe_packet(wire::kMqtt311, 1, {"sensors/kitchen/t", "sensors/hall/t"}));
  std::string error;
  auto forwarded = wire::parse_subscribe(broker_packets().at(0), wire::kMqtt311, error);
  ASSERT_TRUE(forwarded) << error;
  ASSERT_EQ(forwarded->entries.size(), 1u);
  EXPECT_EQ(forwarded->entries[0].filter, "sensors/kitchen/t");
}

// A packet id may not be used again before the broker's SUBACK for it [MQTT-2.3.1-2]: a client
// that does is closed. Its plan of refused filters went to whichever SUBACK with that id came
// first: two codes for a one-filter SUBSCRIBE, one for a two-filter one.
TEST_F(RelayTest, ASubscribePacketIdInUseIsAProtocolError) {
  for (const bool partial_first : {false, true}) {
    SCOPED_TRACE(partial_first);
    fresh_browser();
    connect(wire::kMqtt5);
    const std::string whole = subscribe_packet(wire::kMqtt5, 20, {"sensors/a"});
    const std::string partial = subscribe_packet(wire::kMqtt5, 20, {"secret/x", "sensors/b"});
    from_browser(partial_first ? partial : whole);
    ASSERT_EQ(broker_packets().size(), 1u);
    from_browser(partial_first ? whole : partial);
    EXPECT_TRUE(broker_packets().empty()) << "the second SUBSCRIBE reached the broker";
    ASSERT_TRUE(browser_->close_code);
    EXPECT_EQ(*browser_->close_code, CloseCode::kProtocolError);
    const auto got = browser_->take_packets();
    ASSERT_EQ(got.size(), 1u);
    std::string error;
    EXPECT_EQ(wire::parse_disconnect(got[0], wire::kMqtt5, error), wire::reason::kProtocolError);
  }
  // Once its SUBACK came, the id is free again.
  fresh_browser();
  connect(wire::kMqtt5);
  from_browser(subscribe_packet(wire::kMqtt5, 21, {"secret/x", "sensors/c"}));
  ASSERT_EQ(broker_packets().size(), 1u);
  endpoint_.handler->on_data(wire::encode_suback({21, {}, {1}}, wire::kMqtt5));
  EXPECT_EQ(suback_codes(browser_->take_packets().at(0), wire::kMqtt5),
            (std::vector<std::uint8_t>{0x87, 1}));
  from_browser(subscribe_packet(wire::kMqtt5, 21, {"sensors/d"}));
  EXPECT_EQ(broker_packets().size(), 1u);
  EXPECT_FALSE(browser_->close_code);
}

}  // namespace
}  // namespace wsbridge::mqtt::testing
