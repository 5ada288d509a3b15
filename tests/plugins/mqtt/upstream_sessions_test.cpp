// The upstream's session events (plugins/mqtt/upstream.cpp, upstream_sessions.cpp) against a real
// mosquitto: a JSON session's first status frame comes from the caller's thread without the
// worker, the worker corrects it if the link changed before it took the session in, and opens
// and closes that wait for the worker's next wake-up are still handled within its bound.
#include "support/mqtt_raw_publisher.hpp"
#include "upstream_harness.hpp"

namespace wsbridge::mqtt::testing {
namespace {

using wsbridge::testing::MqttRawPublisher;

// The session has exactly one frame so far: a status frame saying the upstream is `state`.
::testing::AssertionResult only_status(const FakeConnection& c, const std::string& state) {
  if (c.received() != 1) {
    return ::testing::AssertionFailure() << c.received() << " frames, not 1:\n" << c.dump();
  }
  if (!is_status(state)(json::parse(c.frames()[0].payload()))) {
    return ::testing::AssertionFailure() << "not a status \"" << state << "\":\n" << c.dump();
  }
  return ::testing::AssertionSuccess();
}

// The adapter's thread (the service thread) sends the status frame itself, before open_session
// returns: a connection storm does not wake the worker twice per connection.
TEST(UpstreamSessionOpen, TheFirstStatusFrameIsSentBeforeOpenReturns) {
  UpstreamHarness h;
  h.open();  // the link is up from here on
  auto c = h.open_now();
  ASSERT_TRUE(only_status(*c, "up"));
  // It is a working session all the same: its subscribe is answered and delivered to.
  h.subscribe(c, "open/t", "s1");
  MqttRawPublisher peer(h.broker.uri());
  peer.publish("open/t", "\"hello\"");
  EXPECT_TRUE(c->wait_for([](const json& j) { return j.value("payload", "") == "hello"; }))
      << c->dump();
}

// A session told "up" by the adapter while the worker, busy, had yet to handle the connection
// loss that came before the session's open: the loss's "down" goes to the sessions the worker
// knows, so the new one must be told by its own open.
TEST(UpstreamSessionOpen, ASessionOpenedBehindALinkChangeIsToldTheNewState) {
  UpstreamHarness h;
  auto busy = h.open();
  h.subscribe(busy, "busy/t", "s1");
  busy->hold_sends();
  // Let the worker go however the test ends, or the harness would wait for it forever.
  const std::unique_ptr<FakeConnection, void (*)(FakeConnection*)> release(
      busy.get(), [](FakeConnection* c) { c->release_sends(); });
  MqttRawPublisher peer(h.broker.uri());
  peer.publish("busy/t", "\"stuck\"", 0);
  ASSERT_TRUE(busy->wait_stopped_in_send()) << "the worker never delivered to the session";

  // The worker is held inside that delivery: the loss is queued behind it, unseen.
  h.broker.kill();
  std::this_thread::sleep_for(300ms);  // Paho notices the closed socket and queues the loss
  auto late = h.open_now();
  ASSERT_TRUE(only_status(*late, "up"));

  busy->release_sends();
  EXPECT_TRUE(late->wait_for(is_status("down"), 5s, 1)) << late->dump();
  EXPECT_TRUE(busy->wait_for(is_status("down"), 5s)) << busy->dump();
}

// A session opened while the broker is down is told so by the worker (which may hold a connect
// that just succeeded, so that the session is not told "down" and at once "up"), and "up" once
// it connects.
TEST(UpstreamSessionOpen, ASessionOpenedDuringAnOutageIsToldBothStates) {
  UpstreamHarness h;
  auto a = h.open();
  h.outage(a);
  auto c = h.open_now();
  ASSERT_TRUE(c->wait_for(is_status("down"))) << c->dump();
  ASSERT_TRUE(only_status(*c, "down"));
  h.restart(a);
  EXPECT_TRUE(c->wait_for(is_status("up"), 10s, 1)) << c->dump();
}

// A close that nothing else follows still reaches the worker within its bound: the filters only
// the closed session had are unsubscribed at the broker without any other event to carry them.
TEST(UpstreamSessionClose, IsHandledWithoutAnotherEventToWakeTheWorker) {
  UpstreamHarness h;
  auto a = h.open();
  h.subscribe(a, "quiet/own", "s1");
  h.close(a);
  EXPECT_TRUE(eventually([&] { return h.unsubscribes("quiet/own") == 1; }, 2s)) << h.broker.log();
}

// Many sessions opening and closing at once, from two threads as two shards would: every one
// still open afterwards works, and the filters of the closed ones are all given back.
TEST(UpstreamSessionStorm, OpensAndClosesFromSeveralThreadsKeepTheStateRight) {
  UpstreamHarness h;
  auto keeper = h.open();
  constexpr int kPerThread = 1500;
  std::vector<std::shared_ptr<FakeConnection>> kept[2];
  auto storm = [&](int t) {
    for (int i = 0; i < kPerThread; ++i) {
      auto c = std::make_shared<FakeConnection>();
      h.upstream->open_session(c, json_route());
      if (i % 100 == 0) {
        kept[t].push_back(c);  // stays open
        continue;
      }
      if (i % 50 == 1) h.request(c, {{"type", "subscribe"}, {"topic", "storm/gone"}});
      h.upstream->close_session(c->id());
    }
  };
  std::thread first(storm, 0), second(storm, 1);
  first.join();
  second.join();
  for (auto& group : kept) {
    for (auto& c : group) {
      EXPECT_TRUE(is_status("up")(json::parse(c->frames().at(0).payload()))) << c->dump();
    }
  }
  // Every subscriber of storm/gone closed: its last one leaving unsubscribed it.
  const auto last_word_is_unsubscribe = [&] {  // mosquitto's last line about the filter
    const std::string log = h.broker.log();
    const std::string unsubscribe = "\tstorm/gone\n";
    const auto at = log.rfind("\tstorm/gone");
    return at != std::string::npos && log.compare(at, unsubscribe.size(), unsubscribe) == 0;
  };
  h.barrier(keeper);
  EXPECT_TRUE(eventually(last_word_is_unsubscribe, 2s)) << h.broker.log();
  const auto& survivor = kept[1].back();
  h.subscribe(survivor, "storm/kept", "k1");
  MqttRawPublisher peer(h.broker.uri());
  peer.publish("storm/kept", "\"still here\"");
  EXPECT_TRUE(survivor->wait_for([](const json& j) {
    return j.value("payload", "") == "still here";
  })) << survivor->dump();
  for (auto& group : kept) {
    for (auto& c : group) h.upstream->close_session(c->id());
  }
}

}  // namespace
}  // namespace wsbridge::mqtt::testing
