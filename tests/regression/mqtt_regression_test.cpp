// Regression tests (#13) for the mqtt area: each one fails without the fix it names.
//  #11 retained values reach late subscribers of an active filter, once, on MQTT 3.1.1 and 5;
//  #12 a SIGHUP keeps an unchanged broker connection and replaces a changed one;
//  #17 upstream URIs and TLS files are checked by --check-config.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "integration/wsbridge_instance.hpp"
#include "retain_rounds.hpp"
#include "support/eventually.hpp"
#include "support/mosquitto.hpp"
#include "support/mqtt_peer.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string bridge_config(const Mosquitto& broker, const std::string& upstream_extra = "",
                          const std::string& echo_prefix = "v1: ") {
  return "[server]\nlog_level = \"debug\"\n[[listeners]]\nport = ${PORT}\n"
         "[upstreams.local]\nuri = \"" +
         broker.uri() + "\"\nreconnect_min = \"100ms\"\nreconnect_max = \"500ms\"\n" +
         upstream_extra + R"(
[[routes]]
path = "/mqtt"
adapter = "mqtt"
upstream = "local"
allow_subscribe = ["#"]
allow_publish = ["#"]

[[routes]]
path = "/echo"
adapter = "echo"
prefix = ")" +
         echo_prefix + "\"\n";
}

// A browser-side session speaking the JSON protocol.
class Session {
 public:
  Session(const WsbridgeInstance& bridge, const std::string& path)
      : ws_(WsClient::connect(bridge.client(path))) {
    initial_status = next();
  }
  json initial_status;
  void send(const json& j) { ws_.send_text(j.dump()); }
  json next(std::chrono::milliseconds timeout = 5s) {
    auto m = ws_.read_message(timeout);
    if (m.opcode != Opcode::kText) throw std::runtime_error("expected a text frame");
    return json::parse(m.data);
  }
  void subscribe_ok(const std::string& filter, int qos = 1) {
    send({{"type", "subscribe"}, {"topic", filter}, {"qos", qos}, {"id", "s:" + filter}});
    json r = next();
    ASSERT_EQ(r["type"], "ack") << r;
    ASSERT_EQ(r["id"], "s:" + filter);
  }
  // Nothing arrives before the answer to a ping: no message is pending for this session.
  void expect_nothing_pending() {
    send({{"type", "ping"}, {"id", "p"}});
    json r = next();
    EXPECT_EQ(r["type"], "pong") << "unexpected frame: " << r;
  }

 private:
  WsClient ws_;
};

bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
  return eventually(done, timeout);
}

void expect_message(const json& m, const std::string& topic, const json& payload, bool retain) {
  EXPECT_EQ(m["type"], "message") << m;
  EXPECT_EQ(m["topic"], topic) << m;
  EXPECT_EQ(m["payload"], payload) << m;
  EXPECT_EQ(m["retain"], retain) << m;
}

// ---- The shared broker connection and one client's topics
// ----------------------------------------

// A filter of 300 levels passed wsbridge's checks; mosquitto refuses more than 200 levels by
// dropping the connection, and the connection is every client's: the upstream went down, came
// back, subscribed again to the stored filters and went down again, for as long as that client
// stayed. Each level was also a node of wsbridge's trie (5 MB of memory per 30,000-level filter).
// Now refused per upstream ([upstreams.X] max_topic_levels, 128 by default, a route's prefix
// included), and the others are served throughout.
TEST(TopicLevels, AClientsDeepTopicNeverReachesTheSharedBrokerConnection) {
  Mosquitto broker;
  WsbridgeInstance bridge(bridge_config(broker) + R"(
[[routes]]
path = "/tenant"
adapter = "mqtt"
upstream = "local"
topic_prefix = "t/x/"
allow_subscribe = ["#"]
allow_publish = ["#"]
)");
  ASSERT_TRUE(bridge.process->wait_for_output("upstream local: connected", 10s));
  Session other(bridge, "/mqtt");
  other.subscribe_ok("room/#");

  auto levels = [](std::size_t n) {
    std::string topic = "room";
    for (std::size_t i = 1; i < n; ++i) topic += "/a";
    return topic;
  };
  Session deep(bridge, "/mqtt");
  for (const auto& [type, topic] : std::vector<std::pair<std::string, std::string>>{
           {"subscribe", levels(300)}, {"subscribe", levels(129)}, {"publish", levels(300)}}) {
    deep.send({{"type", type}, {"topic", topic}, {"payload", "x"}, {"id", 1}});
    const json r = deep.next();
    EXPECT_EQ(r["type"], "error") << r;
    EXPECT_EQ(r["message"], "topic has more than 128 levels (this route's prefix included)");
  }
  deep.subscribe_ok(levels(128));
  // Behind the prefix "t/x/" ("t/x/room/..." at the broker) a client has 126 levels.
  Session tenant(bridge, "/tenant");
  tenant.subscribe_ok(levels(126));
  tenant.send({{"type", "subscribe"}, {"topic", levels(127)}, {"id", 2}});
  EXPECT_EQ(tenant.next()["type"], "error");

  // The broker connection never dropped, and the other client is served as before.
  MqttPeer peer(broker.uri(), "device");
  peer.publish("room/1", "still here", 1);
  expect_message(other.next(), "room/1", "still here", false);
  other.expect_nothing_pending();
  EXPECT_EQ(bridge.process->output().find("connection lost"), std::string::npos);
}

// The twin: a publish larger than the broker's packet limit made mosquitto (max_packet_size) drop
// the shared connection, and Paho sent the QoS 1 publish again after each reconnect: the upstream
// went up and down for everyone until wsbridge restarted. Refused now ([upstreams.X]
// max_packet_bytes): an error frame on a JSON route, 1009 on a raw one.
// Each level of a filter is a node here and at the broker: one connection's filters are bounded
// together, not only by count (100 filters of 128 levels took 4.6 MB here, 10 MB in mosquitto).
TEST(SubscriptionBounds, AConnectionsFiltersAreBoundedTogetherAndUnsubscribeFreesRoom) {
  Mosquitto broker;
  WsbridgeInstance bridge(bridge_config(broker) + R"(
[[routes]]
path = "/small"
adapter = "mqtt"
upstream = "local"
allow_subscribe = ["#"]
max_subscription_bytes = 64
max_subscription_levels = 8
)");
  ASSERT_TRUE(bridge.process->wait_for_output("upstream local: connected", 10s));
  Session s(bridge, "/small");
  s.subscribe_ok("room/a/b");  // 8 bytes, 3 levels
  auto refused = [&](const std::string& filter, const std::string& key) {
    s.send({{"type", "subscribe"}, {"topic", filter}, {"id", 9}});
    const json r = s.next();
    EXPECT_EQ(r["type"], "error") << r;
    EXPECT_EQ(r["code"], "forbidden") << r;
    EXPECT_NE(r["message"].get<std::string>().find(key), std::string::npos) << r;
  };
  refused("room/" + std::string(60, 'x'), "max_subscription_bytes");  // 73 bytes in all
  refused("a/b/c/d/e/f", "max_subscription_levels");                  // 9 levels in all
  s.subscribe_ok("room/a/b");                                         // already held: adds nothing
  s.send({{"type", "unsubscribe"}, {"topic", "room/a/b"}, {"id", 3}});
  EXPECT_EQ(s.next()["type"], "ack");
  s.subscribe_ok("a/b/c/d/e/f");
  // The refused filters never reached the broker: nothing published there is delivered.
  MqttPeer peer(broker.uri(), "device");
  peer.publish("room/" + std::string(60, 'x'), "not for it", 1);
  peer.publish("a/b/c/d/e/f", "for it", 1);
  expect_message(s.next(), "a/b/c/d/e/f", "for it", false);
  s.expect_nothing_pending();
}

TEST(TopicLevels, APublishOverTheBrokersPacketLimitNeverReachesIt) {
  Mosquitto broker("max_packet_size 10000\n");
  WsbridgeInstance bridge(bridge_config(broker, "max_packet_bytes = 10000\n") + R"(
[[routes]]
path = "/raw"
adapter = "mqtt"
upstream = "local"
mode = "raw"
publish_topic = "room/raw"
)");
  ASSERT_TRUE(bridge.process->wait_for_output("upstream local: connected", 10s));
  Session other(bridge, "/mqtt");
  other.subscribe_ok("room/#");
  Session big(bridge, "/mqtt");
  big.send({{"type", "publish"},
            {"topic", "room/1"},
            {"payload", std::string(20000, 'x')},
            {"qos", 1},
            {"id", 1}});
  const json r = big.next();
  EXPECT_EQ(r["type"], "error") << r;
  EXPECT_NE(r["message"].get<std::string>().find("max_packet_bytes"), std::string::npos) << r;
  WsClient raw = WsClient::connect(bridge.client("/raw"));
  raw.send_binary(std::string(20000, 'y'));
  EXPECT_EQ(raw.wait_close(5s), 1009);

  // Under the limit it goes through, and the connection never dropped.
  big.send({{"type", "publish"},
            {"topic", "room/2"},
            {"payload", std::string(9000, 'z')},
            {"qos", 1},
            {"id", 2}});
  EXPECT_EQ(big.next()["type"], "ack");
  expect_message(other.next(), "room/2", std::string(9000, 'z'), false);
  other.expect_nothing_pending();
  EXPECT_EQ(bridge.process->output().find("connection lost"), std::string::npos);
}

// ---- #11 ---------------------------------------------------------------------------------------

class LateRetained : public ::testing::TestWithParam<std::string> {
 protected:
  Mosquitto broker_;
  std::optional<WsbridgeInstance> bridge_;
  void SetUp() override {
    bridge_.emplace(bridge_config(broker_, "mqtt_version = \"" + GetParam() + "\"\n"));
    ASSERT_TRUE(bridge_->process->wait_for_output("upstream local: connected", 10s));
  }
};

// A value retained while wsbridge is subscribed reaches wsbridge with retain=0 (MQTT forwards it
// so to existing subscriptions); a later browser of the same filter must still get it, flagged
// retained, and the browser already subscribed must not get it twice.
TEST_P(LateRetained, ValueRetainedWhileSubscribedReachesALateSubscriberOnce) {
  MqttPeer peer(broker_.uri(), "device");
  Session first(*bridge_, "/mqtt");
  first.subscribe_ok("st/#");
  peer.publish("st/door", "open", 1, /*retain=*/true);
  expect_message(first.next(), "st/door", "open", false);  // live for it

  Session second(*bridge_, "/mqtt");
  second.subscribe_ok("st/#");
  expect_message(second.next(), "st/door", "open", true);
  second.expect_nothing_pending();
  first.expect_nothing_pending();

  // A live update reaches both, once, as live.
  peer.publish("st/door", "shut", 1, true);
  expect_message(first.next(), "st/door", "shut", false);
  expect_message(second.next(), "st/door", "shut", false);

  // Deleted (empty retained payload): a later subscriber gets nothing, not the stale value.
  peer.publish("st/door", "", 1, true);
  EXPECT_EQ(first.next()["topic"], "st/door");
  EXPECT_EQ(second.next()["topic"], "st/door");
  Session third(*bridge_, "/mqtt");
  third.subscribe_ok("st/#");
  third.expect_nothing_pending();
  first.expect_nothing_pending();
  second.expect_nothing_pending();
}

// A new filter overlapping an active one: the broker's retained copies for the new subscription
// go to its subscriber only, not again to the subscribers of the other filter.
TEST_P(LateRetained, RetainedCopiesForANewFilterGoOnlyToItsSubscriber) {
  MqttPeer peer(broker_.uri(), "device");
  peer.publish("ov/a", "1", 1, true);
  Session wide(*bridge_, "/mqtt");
  wide.subscribe_ok("ov/#");
  expect_message(wide.next(), "ov/a", 1, true);
  Session narrow(*bridge_, "/mqtt");
  narrow.subscribe_ok("ov/+");
  expect_message(narrow.next(), "ov/a", 1, true);
  narrow.expect_nothing_pending();
  wide.expect_nothing_pending();
  // Live messages still reach both.
  peer.publish("ov/a", "2", 1, true);
  expect_message(wide.next(), "ov/a", 2, false);
  expect_message(narrow.next(), "ov/a", 2, false);
}

// Overlapping filters on the shared broker connection: an MQTT 5 broker may send one copy per
// matching subscription (mosquitto does), and every copy went to every matching session, so
// each got the message twice (once per filter of the bridge), live and retained changes alike.
TEST_P(LateRetained, OverlappingFiltersDeliverEachMessageOnce) {
  MqttPeer peer(broker_.uri(), "device");
  Session exact(*bridge_, "/mqtt");
  exact.subscribe_ok("dup/x");
  Session wide(*bridge_, "/mqtt");
  wide.subscribe_ok("dup/#");
  Session both(*bridge_, "/mqtt");  // two filters of its own, both matching
  both.subscribe_ok("dup/+");
  both.subscribe_ok("dup/#");
  peer.publish("dup/x", "1", 1, false);
  peer.publish("dup/x", "2", 1, true);  // a live change of a retained value
  peer.publish("dup/x", "", 1, true);   // its deletion
  for (Session* s : {&exact, &wide, &both}) {
    expect_message(s->next(), "dup/x", 1, false);
    expect_message(s->next(), "dup/x", 2, false);
    EXPECT_EQ(s->next()["topic"], "dup/x");
    s->expect_nothing_pending();
  }
}

// Values the broker no longer has (here: a restarted broker without persistence) are not served
// from a stale cache after the reconnect.
TEST_P(LateRetained, NoStaleValueAfterTheBrokerLostIt) {
  {
    MqttPeer peer(broker_.uri(), "device");
    peer.publish("gone/a", "old", 1, true);
  }
  Session first(*bridge_, "/mqtt");
  first.subscribe_ok("gone/#");
  expect_message(first.next(), "gone/a", "old", true);
  broker_.kill();
  broker_.start();
  ASSERT_TRUE(wait_for([&] {
    const std::string out = bridge_->process->output();
    const auto first_line = out.find("upstream local: connected to");
    return out.find("upstream local: connected to", first_line + 1) != std::string::npos;
  }));
  EXPECT_EQ(first.next()["upstream"], "down");
  EXPECT_EQ(first.next()["upstream"], "up");
  Session late(*bridge_, "/mqtt");
  late.subscribe_ok("gone/#");
  late.expect_nothing_pending();
  first.expect_nothing_pending();
}

// MQTT 5 keeps one SUBSCRIBE per filter: late subscribers are served from the cache, which
// Retain As Published keeps exact.
TEST_P(LateRetained, Mqtt5LateSubscribersCauseNoSubscribe) {
  if (GetParam() != "5") GTEST_SKIP() << "MQTT 3.1.1 re-subscribes for each (see above)";
  MqttPeer peer(broker_.uri(), "device");
  std::vector<std::unique_ptr<Session>> sessions;
  for (int i = 0; i < 5; ++i) {
    sessions.push_back(std::make_unique<Session>(*bridge_, "/mqtt"));
    sessions.back()->subscribe_ok("ref/+/x");
  }
  for (int i = 0; i < 5; ++i) {
    peer.publish("ref/" + std::to_string(i) + "/x", std::to_string(i), 1, true);
    for (auto& s : sessions) expect_message(s->next(), "ref/" + std::to_string(i) + "/x", i, false);
  }
  Session late(*bridge_, "/mqtt");
  late.subscribe_ok("ref/+/x");
  std::set<std::string> topics;
  for (int i = 0; i < 5; ++i) {
    json m = late.next();
    EXPECT_EQ(m["retain"], true) << m;
    topics.insert(m["topic"].get<std::string>());
  }
  EXPECT_EQ(topics.size(), 5u);
  late.expect_nothing_pending();
  for (auto& s : sessions) s->expect_nothing_pending();
  EXPECT_EQ(broker_.count("\tref/+/x (QoS"), 1u) << broker_.log();
}

INSTANTIATE_TEST_SUITE_P(MqttVersions, LateRetained, ::testing::Values("3.1.1", "5"),
                         [](const auto& p) { return p.param == "5" ? "v5" : "v311"; });

// The copies of one SUBSCRIBE: to the sessions that waited for it, each topic once, none after
// the live value.
TEST(RetainRoundsTest, CopiesGoToWaitersOnceAndNeverAfterTheLiveValue) {
  mqtt::RetainRounds rounds;
  const auto now = mqtt::RetainRounds::Clock::now();
  rounds.wait("a/#", 1);
  rounds.live("a/x");  // reached session 1 live before its SUBACK
  rounds.wait("a/#", 2);
  rounds.acked("a/#", now);
  EXPECT_EQ(rounds.copy("a/x", now).deliver, std::vector<ConnectionId>{2});
  EXPECT_TRUE(rounds.copy("a/x", now).deliver.empty());
  auto y = rounds.copy("a/y", now).deliver;
  std::sort(y.begin(), y.end());
  EXPECT_EQ(y, (std::vector<ConnectionId>{1, 2}));
  EXPECT_TRUE(rounds.copy("b/y", now).deliver.empty());
  // Quiet for longer than kQuiet: the group is done.
  EXPECT_TRUE(rounds.copy("a/z", now + 2 * mqtt::RetainRounds::kQuiet).deliver.empty());
  EXPECT_TRUE(rounds.empty());
}

// ---- #12 ---------------------------------------------------------------------------------------

class Reload : public ::testing::Test {
 protected:
  Mosquitto broker_;
  std::optional<WsbridgeInstance> bridge_;
  void SetUp() override {
    bridge_.emplace(bridge_config(broker_));
    ASSERT_TRUE(bridge_->process->wait_for_output("upstream local: connected", 10s));
  }
  void reload(std::string text, int nth) {
    bridge_->rewrite_config(std::move(text));
    bridge_->process->signal(SIGHUP);
    ASSERT_TRUE(wait_count("configuration reloaded", nth, 10s)) << bridge_->process->output();
  }
  std::size_t count(const std::string& needle) const {
    const std::string out = bridge_->process->output();
    std::size_t n = 0;
    for (auto p = out.find(needle); p != std::string::npos; p = out.find(needle, p + 1)) ++n;
    return n;
  }
  bool wait_count(const std::string& needle, std::size_t n, std::chrono::milliseconds timeout) {
    return eventually([&] { return count(needle) >= n; }, timeout);
  }
};

TEST_F(Reload, UnrelatedChangeKeepsTheBrokerConnection) {
  std::optional<Session> old(std::in_place, *bridge_, "/mqtt");
  old->subscribe_ok("keep/#");
  reload(bridge_config(broker_, "", "v2: "), 1);

  // A new session sees the upstream up at once, is acked at once, and may publish at QoS 0.
  const auto t0 = std::chrono::steady_clock::now();
  Session fresh(*bridge_, "/mqtt");
  EXPECT_EQ(fresh.initial_status, (json{{"type", "status"}, {"upstream", "up"}}));
  fresh.subscribe_ok("keep/#");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s) << "the subscribe waited for a reconnect";
  fresh.send({{"type", "publish"}, {"topic", "keep/x"}, {"payload", "a"}, {"qos", 0}, {"id", "q"}});
  EXPECT_EQ(fresh.next(), (json{{"type", "ack"}, {"id", "q"}}));
  expect_message(fresh.next(), "keep/x", "a", false);
  expect_message(old->next(), "keep/x", "a", false);

  // The old configuration goes once its last session does, and the shared connection stays.
  old.reset();
  ASSERT_TRUE(wait_count("released a replaced configuration", 1, 10s))
      << bridge_->process->output();
  fresh.send({{"type", "publish"}, {"topic", "keep/y"}, {"payload", "b"}, {"qos", 1}, {"id", "r"}});
  // (The broker may send the message back before its PUBACK: either order.)
  const json a = fresh.next(), b = fresh.next();
  const json& ack = a["type"] == "ack" ? a : b;
  EXPECT_EQ(ack, (json{{"type", "ack"}, {"id", "r"}}));
  expect_message(a["type"] == "ack" ? b : a, "keep/y", "b", false);

  EXPECT_EQ(broker_.count(" as wsbridge-"), 1u) << broker_.log();
  EXPECT_EQ(count("upstream local: connected"), 1u) << bridge_->process->output();
}

TEST_F(Reload, ChangedUpstreamReconnectsAndTheOldConnectionGoes) {
  std::optional<Session> old(std::in_place, *bridge_, "/mqtt");
  old->subscribe_ok("chg/#");
  reload(bridge_config(broker_, "client_id_prefix = \"changed\"\n"), 1);
  ASSERT_TRUE(broker_.wait_for_log(" as changed-", 1, 10s)) << broker_.log();
  Session fresh(*bridge_, "/mqtt");
  fresh.subscribe_ok("chg/#");
  // The old session keeps its configuration, and so its broker connection, until it closes.
  MqttPeer peer(broker_.uri(), "device");
  peer.publish("chg/x", "1", 1);
  expect_message(old->next(), "chg/x", 1, false);
  expect_message(fresh.next(), "chg/x", 1, false);
  EXPECT_EQ(broker_.count("Client wsbridge-"), 0u) << broker_.log();
  old.reset();
  EXPECT_TRUE(broker_.wait_for_log("Client wsbridge-", 1, 10s))
      << "the replaced broker connection was never closed\n"
      << broker_.log();
  EXPECT_EQ(broker_.count(" as wsbridge-"), 1u);
  EXPECT_EQ(broker_.count(" as changed-"), 1u);
  peer.publish("chg/x", "2", 1);
  expect_message(fresh.next(), "chg/x", 2, false);
}

// ---- #17 ---------------------------------------------------------------------------------------

struct CheckResult {
  int status;
  std::string output;
};
CheckResult check_config(const std::string& text) {
  const std::string path = write_temp_file("check.toml", text);
  auto process = ChildProcess::spawn({WSBRIDGE_BINARY, "--check-config", path});
  auto status = process.wait_exit(10s);
  return {status.value_or(-1), process.output()};
}

std::string tls_upstream(const std::string& uri, const std::string& files) {
  return "[[listeners]]\nport = 1\n[upstreams.b]\nuri = \"" + uri + "\"\n" + files +
         "[[routes]]\npath = \"/m\"\nadapter = \"mqtt\"\nupstream = \"b\"\n";
}

TEST(UpstreamConfigCheck, MqttSchemesAreAcceptedAndNamedInTheError) {
  for (const char* uri : {"mqtt://127.0.0.1:1883", "mqtts://127.0.0.1:8883"}) {
    auto r = check_config(tls_upstream(uri, ""));
    EXPECT_EQ(r.status, 0) << uri << ": " << r.output;
  }
  auto r = check_config(tls_upstream("http://127.0.0.1:1883", ""));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("mqtt://"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("mqtts://"), std::string::npos) << r.output;
}

TEST(UpstreamConfigCheck, TlsFilesThatAreNotPemOrUnreadableFailWithTheirPosition) {
  const std::string garbage = write_temp_file("not-a-cert.pem", "hello, I am not PEM\n");
  const std::string dir = temp_dir();
  for (const auto& [key, path] : std::vector<std::pair<std::string, std::string>>{
           {"ca_file", garbage}, {"ca_file", dir}, {"ca_file", dir + "/missing.pem"}}) {
    const std::string text = tls_upstream("ssl://127.0.0.1:8883", key + " = \"" + path + "\"\n");
    auto r = check_config(text);
    EXPECT_EQ(r.status, 2) << path << ": " << r.output;
    // file:line:column of the key (line 5: after the listener and upstream lines).
    EXPECT_NE(r.output.find(".toml:5:"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(key), std::string::npos) << r.output;
  }
  // A key file that is not a key (here: garbage) next to a certificate that is not one either.
  auto r = check_config(tls_upstream(
      "ssl://127.0.0.1:8883", "cert_file = \"" + garbage + "\"\nkey_file = \"" + garbage + "\"\n"));
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("cert_file"), std::string::npos) << r.output;
}

// The client certificate and key: a good pair passes; a key of another certificate, and an
// encrypted key (there is no passphrase setting), fail at the key's position without a prompt.
TEST(UpstreamConfigCheck, ClientKeyMustBeUnencryptedAndMatchTheCertificate) {
  const std::string dir = temp_dir();
  const std::string script =
      "set -e; cd " + dir +
      ";"
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout a.key "
      "-out a.crt -days 2 -subj /CN=a 2>/dev/null;"
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout b.key "
      "-out b.crt -days 2 -subj /CN=b 2>/dev/null;"
      "openssl pkey -in a.key -aes256 -passout pass:secret -out a-encrypted.key";
  ChildProcess gen = ChildProcess::spawn({"/bin/bash", "-c", script});
  ASSERT_EQ(gen.wait_exit(60s), 0) << gen.output();
  auto with = [&](const std::string& cert, const std::string& key) {
    return check_config(tls_upstream(
        "mqtts://127.0.0.1:8883",
        "cert_file = \"" + dir + "/" + cert + "\"\nkey_file = \"" + dir + "/" + key + "\"\n"));
  };
  auto ok = with("a.crt", "a.key");
  EXPECT_EQ(ok.status, 0) << ok.output;
  auto other = with("a.crt", "b.key");
  EXPECT_EQ(other.status, 2) << other.output;
  EXPECT_NE(other.output.find(".toml:6:"), std::string::npos) << other.output;
  EXPECT_NE(other.output.find("is not the private key of 'cert_file'"), std::string::npos)
      << other.output;
  auto encrypted = with("a.crt", "a-encrypted.key");
  EXPECT_EQ(encrypted.status, 2) << encrypted.output;
  EXPECT_NE(encrypted.output.find("encrypted"), std::string::npos) << encrypted.output;
}

// Groups: a late joiner served from the cache while copies still arrive; a QoS raise without
// copies hands its waiters back; a fence closes the group.
TEST(RetainRoundsTest, JoinTakeAndClose) {
  mqtt::RetainRounds rounds;
  const auto now = mqtt::RetainRounds::Clock::now();
  rounds.wait("f/#", 1);
  rounds.acked("f/#", now);
  rounds.join_open("f/#", 2, {"f/a"}, now);  // had f/a from the cache
  auto a = rounds.copy("f/a", now);
  EXPECT_EQ(a.deliver, std::vector<ConnectionId>{1});  // not 2, which had it from the cache
  EXPECT_EQ(a.involved.size(), 2u);
  rounds.close("f/#");
  EXPECT_TRUE(rounds.empty());
  rounds.wait("g/#", 3);
  EXPECT_EQ(rounds.take_waiting("g/#"), std::vector<ConnectionId>{3});
  EXPECT_TRUE(rounds.empty());
}

}  // namespace
}  // namespace wsbridge::testing
