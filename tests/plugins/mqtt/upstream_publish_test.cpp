// The upstream worker's publishes (plugins/mqtt/upstream_publish.cpp and the reconnect in
// upstream.cpp), driven directly against a real mosquitto that is killed and restarted on the
// same port: QoS 1/2 publishes buffered during an outage and flushed in order on reconnect, and
// in_flight() (what a graceful shutdown waits for) back to 0 once the broker has everything.
#include <set>

#include "upstream_harness.hpp"

namespace wsbridge::mqtt::testing {
namespace {

json publish(const std::string& topic, const std::string& payload, int qos, const json& id) {
  return {{"type", "publish"}, {"topic", topic}, {"payload", payload}, {"qos", qos}, {"id", id}};
}

// Where the broker logged receiving a PUBLISH on `topic` from the upstream, or npos.
std::size_t received_at(const std::string& log, const std::string& topic) {
  for (auto pos = log.find("Received PUBLISH from unit-"); pos != std::string::npos;
       pos = log.find("Received PUBLISH from unit-", pos + 1)) {
    const auto end = log.find('\n', pos);
    if (log.substr(pos, end - pos).find("'" + topic + "'") != std::string::npos) return pos;
  }
  return std::string::npos;
}

TEST(UpstreamPublish, AnsweredPublishesLeaveNothingInFlight) {
  UpstreamHarness h;
  auto a = h.open();
  for (int i = 0; i < 20; ++i) {
    h.request(a, publish("pub/" + std::to_string(i), "v", i % 3, i));
  }
  h.request(a, json{{"type", "ping"}, {"id", "p"}});
  ASSERT_TRUE(a->wait_for(is_reply("pong", "p")));
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(a->wait_for(is_reply("ack", i))) << i;
  EXPECT_TRUE(eventually([&] { return h.upstream->in_flight() == 0; }))
      << h.upstream->in_flight() << " still in flight";
}

TEST(UpstreamPublish, BufferedDuringAnOutageAndFlushedInOrderOnReconnect) {
  UpstreamHarness h;
  auto a = h.open();
  h.outage(a);

  for (int i = 1; i <= 3; ++i) {
    h.request(a, publish("buf/" + std::to_string(i), "v" + std::to_string(i), i == 2 ? 2 : 1,
                         "b" + std::to_string(i)));
  }
  // QoS 0 is not buffered: refused at once.
  h.request(a, publish("buf/0", "v0", 0, "q0"));
  auto refused = a->wait_for(is_reply("error", "q0"));
  ASSERT_TRUE(refused);
  EXPECT_EQ(json::parse(refused->payload())["code"], "upstream_unavailable");
  // The buffered ones are unanswered and count as in flight (the QoS 0 one no longer does).
  EXPECT_TRUE(eventually([&] { return h.upstream->in_flight() == 3; })) << h.upstream->in_flight();
  EXPECT_FALSE(a->wait_for(is_type("ack"), 200ms));

  h.restart(a);
  for (const char* id : {"b1", "b2", "b3"}) EXPECT_TRUE(a->wait_for(is_reply("ack", id))) << id;
  EXPECT_TRUE(eventually([&] { return h.upstream->in_flight() == 0; }))
      << h.upstream->in_flight() << " still in flight";

  // The broker got each exactly once, in the order the client sent them, and never the QoS 0 one.
  const std::string log = h.broker.log();
  const auto p1 = received_at(log, "buf/1");
  const auto p2 = received_at(log, "buf/2");
  const auto p3 = received_at(log, "buf/3");
  ASSERT_NE(p1, std::string::npos) << log;
  ASSERT_NE(p2, std::string::npos) << log;
  ASSERT_NE(p3, std::string::npos) << log;
  EXPECT_LT(p1, p2);
  EXPECT_LT(p2, p3);
  EXPECT_EQ(received_at(log, "buf/0"), std::string::npos);
  // Each was acknowledged to the client once (in the order the broker completed them: the QoS 2
  // one takes a round trip more).
  std::multiset<std::string> acks;
  for (const Frame& f : a->frames()) {
    json j = json::parse(f.payload());
    if (j["type"] == "ack") acks.insert(j["id"].get<std::string>());
  }
  EXPECT_EQ(acks, (std::multiset<std::string>{"b1", "b2", "b3"}));
}

// A QoS 1 publish handed to the broker and not acknowledged when the connection drops is sent
// again after the reconnect (at least once), not failed and not forgotten.
TEST(UpstreamPublish, UnacknowledgedWhenTheConnectionDropsIsSentAgain) {
  UpstreamHarness h;
  auto a = h.open();
  h.broker.freeze();  // the broker takes the PUBLISH into its socket buffer and never answers
  h.request(a, publish("again/1", "v", 1, "l1"));
  std::this_thread::sleep_for(200ms);  // (Paho writes it out)
  EXPECT_EQ(h.upstream->in_flight(), 1u);
  h.outage(a);
  EXPECT_EQ(h.upstream->in_flight(), 1u) << a->dump();
  h.restart(a);
  EXPECT_TRUE(a->wait_for(is_reply("ack", "l1"))) << a->dump();
  EXPECT_FALSE(a->wait_for(is_reply("error", "l1"), 0ms)) << a->dump();
  EXPECT_TRUE(eventually([&] { return h.upstream->in_flight() == 0; })) << h.upstream->in_flight();
  EXPECT_NE(received_at(h.broker.log(), "again/1"), std::string::npos) << h.broker.log();
}

// The buffer is bounded; a refused publish is answered and not counted. What is buffered stays
// owed to the broker after its session closed, and counts until the broker has it.
TEST(UpstreamPublish, InFlightCountsBufferedPublishesUntilTheBrokerHasThem) {
  UpstreamHarness h(4, /*max_buffered=*/2);
  auto a = h.open();
  h.outage(a);
  for (int i = 1; i <= 3; ++i) {
    h.request(a, publish("owed/" + std::to_string(i), "v", 1, i));
  }
  auto refused = a->wait_for(is_reply("error", 3));
  ASSERT_TRUE(refused);
  EXPECT_NE(json::parse(refused->payload())["message"].get<std::string>().find("buffer"),
            std::string::npos);
  EXPECT_TRUE(eventually([&] { return h.upstream->in_flight() == 2; })) << h.upstream->in_flight();

  h.close(a);
  std::this_thread::sleep_for(100ms);  // (the close reaches the worker; nothing is dropped)
  EXPECT_EQ(h.upstream->in_flight(), 2u);

  h.broker.start();  // (a is closed: nobody to tell)
  EXPECT_TRUE(eventually([&] { return h.upstream->in_flight() == 0; }, 10s))
      << h.upstream->in_flight() << " still in flight";
  EXPECT_TRUE(h.broker.wait_for_log("'owed/2'", 1, 5s)) << h.broker.log();
  const std::string log = h.broker.log();
  EXPECT_NE(received_at(log, "owed/1"), std::string::npos) << log;
  EXPECT_EQ(received_at(log, "owed/3"), std::string::npos) << log;
}

// Every client shares the broker connection's publish window. A burst from one (up to its
// session_window, 256) used to fill a FIFO that everyone else's publishes waited behind; they
// are now taken a session at a time in turn.
TEST(UpstreamPublish, ABurstFromOneSessionDoesNotQueueTheOthersBehindIt) {
  UpstreamHarness h;
  auto a = h.open();
  auto b = h.open();
  h.broker.freeze();  // the window (64) fills with the burst and the rest waits in the buffer
  constexpr int kBurst = 200;
  for (int i = 0; i < kBurst; ++i) {
    h.request(a, publish("burst/" + std::to_string(i), "v", 1, i));
  }
  ASSERT_TRUE(eventually([&] { return h.upstream->in_flight() == kBurst; }))
      << h.upstream->in_flight();
  h.request(b, publish("other/1", "v", 1, "o1"));
  ASSERT_TRUE(eventually([&] { return h.upstream->in_flight() == kBurst + 1; }))
      << h.upstream->in_flight();
  h.broker.thaw();
  EXPECT_TRUE(b->wait_for(is_reply("ack", "o1"), 10s)) << b->dump();
  for (int i = 0; i < kBurst; ++i) ASSERT_TRUE(a->wait_for(is_reply("ack", i), 10s)) << i;

  const std::string log = h.broker.log();
  const auto other = received_at(log, "other/1");
  ASSERT_NE(other, std::string::npos) << log;
  int burst_before = 0;
  std::size_t previous = 0;
  for (int i = 0; i < kBurst; ++i) {
    const auto at = received_at(log, "burst/" + std::to_string(i));
    ASSERT_NE(at, std::string::npos) << i;
    EXPECT_GT(at, previous) << "the burst keeps its own order: " << i;
    previous = at;
    if (at < other) ++burst_before;
  }
  // What was in the window when it came, and not much more (a FIFO: all 200).
  EXPECT_LE(burst_before, 70);
}

}  // namespace
}  // namespace wsbridge::mqtt::testing
