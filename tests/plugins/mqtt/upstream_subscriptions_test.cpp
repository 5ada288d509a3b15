// The upstream worker's subscriptions (plugins/mqtt/upstream_subscriptions.cpp and the session
// events of upstream.cpp), driven directly against a real mosquitto: reference-counted broker
// subscriptions, one Frame per route shared by every subscriber, a closing session's
// subscriptions given back, and a SUBSCRIBE cut off by a connection loss made again.
#include "support/mqtt_raw_publisher.hpp"
#include "upstream_harness.hpp"

namespace wsbridge::mqtt::testing {
namespace {

using wsbridge::testing::MqttRawPublisher;

// Two sessions on one filter share one broker subscription: only the last one leaving sends the
// UNSUBSCRIBE. On MQTT 5 the second subscriber is served from the retained cache without a new
// SUBSCRIBE; on MQTT 3.1.1 it causes a fresh SUBSCRIBE (only the broker knows the retained
// values), but the reference count is the same.
class SubscriptionCounting : public ::testing::TestWithParam<int> {};

TEST_P(SubscriptionCounting, OneBrokerSubscriptionPerFilterUntilItsLastSubscriberLeaves) {
  const int version = GetParam();
  UpstreamHarness h(version);
  auto a = h.open();
  auto b = h.open();
  h.subscribe(a, "rc/t", "a1", 1);
  h.subscribe(b, "rc/t", "b1", 1);
  h.barrier(a);
  EXPECT_EQ(h.subscribes("rc/t"), version == 5 ? 1u : 2u) << h.broker.log();

  MqttRawPublisher peer(h.broker.uri());
  peer.publish("rc/t", "\"one\"");
  ASSERT_TRUE(a->wait_for([](const json& j) { return j.value("payload", "") == "one"; }));
  ASSERT_TRUE(b->wait_for([](const json& j) { return j.value("payload", "") == "one"; }));

  // The first one leaves: the broker subscription stays, and b still gets messages.
  h.unsubscribe(a, "rc/t", "a2");
  h.barrier(b);
  EXPECT_EQ(h.unsubscribes("rc/t"), 0u) << h.broker.log();
  peer.publish("rc/t", "\"two\"");
  ASSERT_TRUE(b->wait_for([](const json& j) { return j.value("payload", "") == "two"; }));
  // (The worker sends one message to all its subscribers at once: had a still been one, it would
  // have it by now.)
  EXPECT_EQ(a->messages("rc/t").size(), 1u);

  // The last one leaves: exactly one UNSUBSCRIBE.
  h.unsubscribe(b, "rc/t", "b2");
  h.barrier(b);
  EXPECT_EQ(h.unsubscribes("rc/t"), 1u) << h.broker.log();
  EXPECT_EQ(h.subscribes("rc/t"), version == 5 ? 1u : 2u);
}

// Subscribing again to a filter a session already has is answered like the first time, and
// counts once: a single unsubscribe gives it back.
TEST_P(SubscriptionCounting, ARepeatedSubscribeCountsOnce) {
  UpstreamHarness h(GetParam());
  auto a = h.open();
  h.subscribe(a, "rep/t", "a1");
  h.subscribe(a, "rep/t", "a2");
  h.unsubscribe(a, "rep/t", "a3");
  h.barrier(a);
  EXPECT_EQ(h.subscribes("rep/t"), 1u) << h.broker.log();
  EXPECT_EQ(h.unsubscribes("rep/t"), 1u) << h.broker.log();
}

INSTANTIATE_TEST_SUITE_P(MqttVersions, SubscriptionCounting, ::testing::Values(4, 5),
                         [](const auto& param_info) {
                           return "mqtt" + std::to_string(param_info.param);
                         });

// One broker message matched by N sessions is serialized once per route: every session of a
// route receives the very same Frame (one buffer), and a route with another prefix its own.
TEST(UpstreamFanOut, EverySubscriberOfARouteGetsTheSameFrame) {
  UpstreamHarness h;
  const auto plain = json_route();
  const auto prefixed = json_route("fan/");
  std::vector<std::shared_ptr<FakeConnection>> on_plain;
  std::vector<std::shared_ptr<FakeConnection>> on_prefixed;
  for (int i = 0; i < 4; ++i) {
    on_plain.push_back(h.open(plain));
    h.subscribe(on_plain.back(), "fan/#", "p" + std::to_string(i));
  }
  for (int i = 0; i < 3; ++i) {
    on_prefixed.push_back(h.open(prefixed));
    // The same broker filter ("fan/#"): one subscription, one copy of each message.
    h.subscribe(on_prefixed.back(), "#", "x" + std::to_string(i));
  }

  MqttRawPublisher peer(h.broker.uri());
  peer.publish("fan/x", "{\"n\":1}");
  std::vector<Frame> plain_frames;
  for (auto& c : on_plain) {
    auto f = c->wait_for([](const json& j) { return j.value("topic", "") == "fan/x"; });
    ASSERT_TRUE(f);
    plain_frames.push_back(*f);
    EXPECT_EQ(c->messages("fan/x").size(), 1u);
  }
  std::vector<Frame> prefixed_frames;
  for (auto& c : on_prefixed) {
    auto f = c->wait_for([](const json& j) { return j.value("topic", "") == "x"; });
    ASSERT_TRUE(f);
    prefixed_frames.push_back(*f);
    EXPECT_EQ(c->messages("x").size(), 1u);
  }
  for (const Frame& f : plain_frames) {
    EXPECT_EQ(f.payload().data(), plain_frames[0].payload().data()) << "not one shared buffer";
  }
  for (const Frame& f : prefixed_frames) {
    EXPECT_EQ(f.payload().data(), prefixed_frames[0].payload().data()) << "not one shared buffer";
  }
  EXPECT_NE(plain_frames[0].payload().data(), prefixed_frames[0].payload().data());
  EXPECT_EQ(json::parse(plain_frames[0].payload())["payload"], json({{"n", 1}}));
  EXPECT_EQ(json::parse(prefixed_frames[0].payload())["payload"], json({{"n", 1}}));
  // QoS 0 is at-most-once: its frames may be dropped for a slow client.
  EXPECT_TRUE(plain_frames[0].is_droppable());
}

// A session that closes gives back every subscription it held: the filters nobody else has are
// unsubscribed at the broker, shared ones stay for the others, and it gets nothing more.
TEST(UpstreamSessionClose, GivesBackItsSubscriptions) {
  UpstreamHarness h;
  auto a = h.open();
  auto b = h.open();
  h.subscribe(a, "cl/shared", "a1");
  h.subscribe(a, "cl/own/#", "a2");
  h.subscribe(b, "cl/shared", "b1");

  h.close(a);
  h.barrier(b);
  EXPECT_EQ(h.unsubscribes("cl/own/#"), 1u) << h.broker.log();
  EXPECT_EQ(h.unsubscribes("cl/shared"), 0u) << h.broker.log();

  MqttRawPublisher peer(h.broker.uri());
  peer.publish("cl/own/x", "\"lost\"");
  peer.publish("cl/shared", "\"kept\"");
  ASSERT_TRUE(b->wait_for([](const json& j) { return j.value("payload", "") == "kept"; }));
  EXPECT_TRUE(a->messages("cl/shared").empty());
  EXPECT_TRUE(a->messages("cl/own/x").empty());

  // Closing the last subscriber gives the shared filter back too.
  auto c = h.open();  // (still open: its publishes are the barrier)
  h.close(b);
  h.barrier(c);
  EXPECT_EQ(h.unsubscribes("cl/shared"), 1u) << h.broker.log();
}

// A SUBSCRIBE the broker had not answered when the connection dropped is not a refusal: it is
// made again on the reconnect and then acknowledged, and the subscription works.
// Subscribing again to a filter a session has: a higher QoS is asked of the broker (the repeat
// was acknowledged at once and the filter stayed at its first QoS, so a QoS 1 message arrived as
// QoS 0, which a slow consumer's drop_oldest may discard). The session has the retained values:
// none come again.
TEST(UpstreamSubscribeAgain, AHigherQosIsAskedOfTheBroker) {
  UpstreamHarness h;
  auto c = h.open();
  MqttRawPublisher peer(h.broker.uri());
  peer.publish("qu/r", "\"kept\"", 1, true);
  h.subscribe(c, "qu/#", "a", 0);
  ASSERT_TRUE(eventually([&] { return c->messages("qu/r").size() == 1; })) << c->dump();
  h.subscribe(c, "qu/#", "b", 2);
  EXPECT_TRUE(h.broker.wait_for_log("\tqu/# (QoS 2)", 1, 5s)) << h.broker.log();
  peer.publish("qu/x", "1", 1);
  ASSERT_TRUE(eventually([&] { return c->messages("qu/x").size() == 1; })) << c->dump();
  EXPECT_EQ(c->messages("qu/x")[0]["qos"], 1);
  EXPECT_EQ(c->messages("qu/r").size(), 1u);
}

TEST(UpstreamReconnect, ASubscribeCutOffByTheConnectionLossIsMadeAgain) {
  UpstreamHarness h;
  auto a = h.open();
  h.broker.freeze();  // the SUBSCRIBE reaches the broker's socket and is never answered
  h.request(a, {{"type", "subscribe"}, {"topic", "cut/t"}, {"id", "s1"}});
  std::this_thread::sleep_for(200ms);
  h.outage(a);
  h.restart(a);
  ASSERT_TRUE(a->wait_for(is_reply("ack", "s1"))) << a->dump();
  EXPECT_FALSE(a->wait_for(is_reply("error", "s1"), 0ms)) << a->dump();
  MqttRawPublisher peer(h.broker.uri());
  peer.publish("cut/t", "\"after\"");
  EXPECT_TRUE(a->wait_for([](const json& j) { return j.value("payload", "") == "after"; }))
      << a->dump();
}

}  // namespace
}  // namespace wsbridge::mqtt::testing
