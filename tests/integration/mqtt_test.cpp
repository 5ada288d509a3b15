// The mqtt adapter against a real mosquitto started for each test: round trips at every QoS,
// retained messages, fan-out, reference-counted SUBSCRIBEs seen from the broker, prefixes, ACLs,
// malformed frames, raw routes, and the broker killed and restarted mid-session.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/mosquitto.hpp"
#include "support/mqtt_peer.hpp"
#include "wsbridge_instance.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// A wsbridge in front of `broker` with the routes used below.
std::string bridge_config(const Mosquitto& broker, const std::string& extra_upstream = "") {
  return "[server]\nlog_level = \"debug\"\n[[listeners]]\nport = ${PORT}\n"
         "[upstreams.local]\nuri = \"" +
         broker.uri() +
         "\"\nreconnect_min = \"100ms\"\n"
         "reconnect_max = \"500ms\"\n" +
         extra_upstream +
         R"(
[[routes]]
path = "/mqtt"
adapter = "mqtt"
upstream = "local"
allow_subscribe = ["#"]
allow_publish = ["#"]

[[routes]]
path = "/tenant"
adapter = "mqtt"
upstream = "local"
topic_prefix = "t1/"
allow_subscribe = ["#"]
allow_publish = ["#"]

[[routes]]
path = "/limited"
adapter = "mqtt"
upstream = "local"
allow_subscribe = ["sensors/#", "public/+"]
allow_publish = ["cmd/+"]
max_qos = 1

[[routes]]
path = "/raw"
adapter = "mqtt"
upstream = "local"
mode = "raw"
subscribe = ["raw/in/#"]
publish_topic = "raw/out"
qos = 1
)";
}

// A browser-side session speaking the JSON protocol.
class Session {
 public:
  Session(const WsbridgeInstance& bridge, const std::string& path)
      : ws_(WsClient::connect(bridge.client(path))) {
    initial_status = next();
    EXPECT_EQ(initial_status["type"], "status") << initial_status;
  }
  json initial_status;
  void send(const json& j) { ws_.send_text(j.dump()); }
  json next(std::chrono::milliseconds timeout = 5s) {
    auto m = ws_.read_message(timeout);
    if (m.opcode != Opcode::kText) throw std::runtime_error("expected a text frame");
    return json::parse(m.data);
  }
  // The next frame that is not a message (acks, errors, status), skipping messages.
  json next_reply(std::chrono::milliseconds timeout = 5s) {
    while (true) {
      json j = next(timeout);
      if (j["type"] != "message") return j;
    }
  }
  json request(json j) {
    send(j);
    return next_reply();
  }
  void subscribe_ok(const std::string& filter, int qos = 0) {
    json r = request({{"type", "subscribe"}, {"topic", filter}, {"qos", qos}, {"id", filter}});
    ASSERT_EQ(r["type"], "ack") << r;
    ASSERT_EQ(r["id"], filter);
  }
  WsClient& ws() { return ws_; }

 private:
  WsClient ws_;
};

class MqttTest : public ::testing::Test {
 protected:
  Mosquitto broker_;
  std::optional<WsbridgeInstance> bridge_;
  void start_bridge(const std::string& extra_upstream = "") {
    bridge_.emplace(bridge_config(broker_, extra_upstream));
    // Wait until the upstream is connected, so tests start from a known state.
    ASSERT_TRUE(bridge_->process->wait_for_output("upstream local: connected", 10s))
        << bridge_->process->output();
  }
  void SetUp() override { start_bridge(); }
};

TEST_F(MqttTest, RoundTripsAtEveryQos) {
  Session s(*bridge_, "/mqtt");
  MqttPeer peer(broker_.uri());
  peer.subscribe("cmd/#", 2);
  for (int qos = 0; qos <= 2; ++qos) {
    const std::string topic = "sensors/k" + std::to_string(qos) + "/temp";
    s.subscribe_ok(topic, qos);
    peer.publish(topic, "21.5", qos);
    json m = s.next();
    EXPECT_EQ(m["type"], "message");
    EXPECT_EQ(m["topic"], topic);
    EXPECT_EQ(m["payload"], 21.5);
    EXPECT_EQ(m["qos"], qos);
    EXPECT_EQ(m["retain"], false);

    json ack = s.request({{"type", "publish"},
                          {"topic", "cmd/lamp"},
                          {"payload", {{"on", true}}},
                          {"qos", qos},
                          {"id", qos}});
    EXPECT_EQ(ack, json({{"type", "ack"}, {"id", qos}}));
    auto got = peer.next();
    ASSERT_TRUE(got);
    EXPECT_EQ((*got)->get_topic(), "cmd/lamp");
    EXPECT_EQ((*got)->get_payload_str(), R"({"on":true})");
    EXPECT_EQ((*got)->get_qos(), qos);
  }
}

TEST_F(MqttTest, PayloadEncodings) {
  Session s(*bridge_, "/mqtt");
  MqttPeer peer(broker_.uri());
  peer.subscribe("enc/#", 1);
  s.subscribe_ok("enc/#");
  peer.publish("enc/text", "plain words");
  peer.publish("enc/json", R"({"a":[1,2]})");
  peer.publish("enc/bin", std::string("\x00\xff\xfe", 3));
  EXPECT_EQ(s.next()["payload"], "plain words");
  EXPECT_EQ(s.next()["payload"], json::parse(R"({"a":[1,2]})"));
  json bin = s.next();
  EXPECT_FALSE(bin.contains("payload"));
  EXPECT_EQ(bin["payload_b64"], "AP/+");

  s.request({{"type", "publish"}, {"topic", "enc/out1"}, {"payload", "a string"}, {"id", 1}});
  s.request({{"type", "publish"}, {"topic", "enc/out2"}, {"payload_b64", "AAEC"}, {"id", 2}});
  std::map<std::string, std::string> seen;
  for (int i = 0; i < 5; ++i) {  // our own three echoes come back through the subscription too
    auto m = peer.next(2s);
    if (!m) break;
    seen[(*m)->get_topic()] = (*m)->get_payload_str();
  }
  EXPECT_EQ(seen["enc/out1"], "a string");
  EXPECT_EQ(seen["enc/out2"], std::string("\x00\x01\x02", 3));
}

TEST_F(MqttTest, RetainedMessagesOnSubscribeEvenForLateSubscribersOfAnActiveFilter) {
  MqttPeer peer(broker_.uri());
  peer.publish("status/door", "open", 1, /*retain=*/true);
  Session first(*bridge_, "/mqtt");
  first.subscribe_ok("status/#");
  json m = first.next();
  EXPECT_EQ(m["topic"], "status/door");
  EXPECT_EQ(m["payload"], "open");
  EXPECT_EQ(m["retain"], true);
  // The filter is active now: on MQTT 3.1.1 a second subscriber causes a fresh SUBSCRIBE, whose
  // retained copies go to it alone (#13.11; MQTT 5 serves it from the cache instead).
  Session second(*bridge_, "/mqtt");
  second.subscribe_ok("status/#");
  m = second.next();
  EXPECT_EQ(m["topic"], "status/door");
  EXPECT_EQ(m["retain"], true);
  EXPECT_EQ(broker_.count("\tstatus/# (QoS"), 2u) << broker_.log();
}

TEST_F(MqttTest, WildcardFanOutToManySessionsOncePerSession) {
  std::vector<std::unique_ptr<Session>> sessions;
  for (int i = 0; i < 40; ++i) {
    sessions.push_back(std::make_unique<Session>(*bridge_, "/mqtt"));
    sessions.back()->subscribe_ok(i % 2 == 0 ? "fan/+/temp" : "fan/#");
  }
  sessions[0]->subscribe_ok("fan/#");  // overlapping filters of one session: delivered once
  MqttPeer peer(broker_.uri());
  for (int n = 0; n < 20; ++n)
    peer.publish("fan/k" + std::to_string(n) + "/temp", std::to_string(n), 1);
  for (auto& s : sessions) {
    for (int n = 0; n < 20; ++n) {
      json m = s->next();
      ASSERT_EQ(m["topic"], "fan/k" + std::to_string(n) + "/temp");
      ASSERT_EQ(m["payload"], n);
    }
  }
  // Nothing more: no duplicates for the overlapping session.
  sessions[0]->send({{"type", "ping"}, {"id", "p"}});
  EXPECT_EQ(sessions[0]->next()["type"], "pong");
}

// (On MQTT 3.1.1 every subscriber's SUBSCRIBE reaches the broker, for its retained copies,
// #13.11; MQTT 5 makes one: see the mqtt regression tests.)
TEST_F(MqttTest, SubscribesReachTheBrokerAndOneUnsubscribeAfterTheLast) {
  {
    std::vector<std::unique_ptr<Session>> sessions;
    for (int i = 0; i < 10; ++i) {
      sessions.push_back(std::make_unique<Session>(*bridge_, "/mqtt"));
      sessions.back()->subscribe_ok("ref/+/x", 1);
    }
    EXPECT_EQ(broker_.count("\tref/+/x (QoS"), 10u) << broker_.log();
    // Half unsubscribe explicitly, the rest disconnect.
    for (int i = 0; i < 5; ++i) {
      json r = sessions[i]->request({{"type", "unsubscribe"}, {"topic", "ref/+/x"}, {"id", "u"}});
      EXPECT_EQ(r["type"], "ack");
    }
    EXPECT_EQ(broker_.count("Received UNSUBSCRIBE from wsbridge"), 0u);
  }
  EXPECT_TRUE(broker_.wait_for_log("Received UNSUBSCRIBE from wsbridge", 1, 5s)) << broker_.log();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(broker_.count("Received UNSUBSCRIBE from wsbridge"), 1u);
  EXPECT_EQ(broker_.count("\tref/+/x (QoS"), 10u);
}

TEST_F(MqttTest, TopicPrefixIsolatesRoutes) {
  Session tenant(*bridge_, "/tenant");
  tenant.subscribe_ok("#");
  MqttPeer peer(broker_.uri());
  peer.subscribe("#", 1);
  peer.publish("t2/secret", "no");
  peer.publish("other", "no");
  peer.publish("t1/a/b", "yes");
  json m = tenant.next();
  EXPECT_EQ(m["topic"], "a/b");
  EXPECT_EQ(m["payload"], "yes");
  EXPECT_EQ(
      tenant.request({{"type", "publish"}, {"topic", "x"}, {"payload", 1}, {"id", 1}})["type"],
      "ack");
  std::vector<std::string> topics;
  for (int i = 0; i < 4; ++i) {
    auto got = peer.next(2s);
    if (!got) break;
    topics.push_back((*got)->get_topic());
  }
  EXPECT_NE(std::find(topics.begin(), topics.end(), "t1/x"), topics.end());
  EXPECT_EQ(std::find(topics.begin(), topics.end(), "x"), topics.end());
  EXPECT_TRUE(broker_.wait_for_log("\tt1/# (QoS", 1, 1s));
}

TEST_F(MqttTest, AclDenialsReachNothingAtTheBroker) {
  Session s(*bridge_, "/limited");
  json r = s.request({{"type", "subscribe"}, {"topic", "#"}, {"id", "all"}});
  EXPECT_EQ(r["type"], "error");
  EXPECT_EQ(r["code"], "forbidden");
  EXPECT_EQ(r["id"], "all");
  r = s.request(
      {{"type", "subscribe"}, {"topic", "public/#"}, {"id", "pub"}});  // wider than public/+
  EXPECT_EQ(r["code"], "forbidden");
  // A shared subscription was acknowledged (where a pattern allowed it) and then matched nothing:
  // refused as such.
  r = s.request({{"type", "subscribe"}, {"topic", "$share/g/public/news"}, {"id", "share"}});
  EXPECT_EQ(r["code"], "bad_request");
  EXPECT_NE(r["message"].get<std::string>().find("shared subscriptions"), std::string::npos) << r;
  s.subscribe_ok("sensors/+/temp");
  s.subscribe_ok("public/news");
  r = s.request({{"type", "publish"}, {"topic", "cmd/a/b"}, {"payload", 1}, {"id", "deep"}});
  EXPECT_EQ(r["code"], "forbidden");
  r = s.request(
      {{"type", "publish"}, {"topic", "cmd/a"}, {"payload", 1}, {"qos", 2}, {"id", "q2"}});
  EXPECT_EQ(r["code"], "bad_request");  // above max_qos
  EXPECT_EQ(
      s.request({{"type", "publish"}, {"topic", "cmd/a"}, {"payload", 1}, {"id", "ok"}})["type"],
      "ack");
  EXPECT_EQ(broker_.count("\t# (QoS"), 0u);
  EXPECT_EQ(broker_.count("\tpublic/# (QoS"), 0u);
  EXPECT_EQ(broker_.count("'cmd/a/b'"), 0u);
}

TEST_F(MqttTest, MalformedFramesGetBadRequestAndTheConnectionStaysOpen) {
  Session s(*bridge_, "/mqtt");
  auto expect_bad = [&](const std::string& text, const std::string& why) {
    s.ws().send_text(text);
    json r = s.next_reply();
    EXPECT_EQ(r["type"], "error") << why;
    EXPECT_EQ(r["code"], "bad_request") << why << ": " << r;
  };
  expect_bad("{not json", "invalid JSON");
  expect_bad("[1,2]", "not an object");
  expect_bad(R"({"type":"launch","id":1})", "unknown type");
  expect_bad(R"({"type":"subscribe","id":2})", "missing topic");
  expect_bad(R"({"type":"publish","topic":"a/+","id":3})", "wildcard in publish");
  expect_bad(R"({"type":"publish","topic":"a/#","id":3})", "wildcard in publish");
  expect_bad(R"({"type":"subscribe","topic":"a/#/b","id":4})", "bad filter");
  expect_bad(R"({"type":"publish","topic":"a\u0000b","id":5})", "NUL in topic");
  expect_bad(json({{"type", "publish"}, {"topic", std::string(65536, 'a')}, {"id", 6}}).dump(),
             "topic too long");
  expect_bad(R"({"type":"subscribe","topic":"a","qos":3,"id":7})", "qos 3");
  expect_bad(R"({"type":"publish","topic":"a","payload_b64":"!!","id":8})", "bad base64");
  expect_bad(R"({"type":"publish","topic":"a","payload":1,"payload_b64":"AA==","id":9})",
             "both payloads");
  s.ws().send_binary("binary frame");
  EXPECT_EQ(s.next_reply()["code"], "bad_request");
  // An error keeps the id when it could be read.
  s.ws().send_text(R"({"type":"launch","id":"keep-me"})");
  EXPECT_EQ(s.next_reply()["id"], "keep-me");
  json pong = s.request({{"type", "ping"}, {"id", 42}});
  EXPECT_EQ(pong, json({{"type", "pong"}, {"id", 42}}));
}

TEST_F(MqttTest, RawRoutePassesPayloadsVerbatim) {
  WsClient ws = WsClient::connect(bridge_->client("/raw"));
  MqttPeer peer(broker_.uri());
  peer.subscribe("raw/out", 1);
  ASSERT_TRUE(broker_.wait_for_log("\traw/in/# (QoS 1)", 1, 5s)) << broker_.log();
  ws.send_text("hello broker");
  auto got = peer.next();
  ASSERT_TRUE(got);
  EXPECT_EQ((*got)->get_payload_str(), "hello broker");
  EXPECT_EQ((*got)->get_qos(), 1);
  peer.publish("raw/in/a", "text payload");
  peer.publish("raw/in/b", std::string("\x01\x02\xff", 3));
  auto m = ws.read_message();
  EXPECT_EQ(m.opcode, Opcode::kText);
  EXPECT_EQ(m.data, "text payload");
  m = ws.read_message();
  EXPECT_EQ(m.opcode, Opcode::kBinary);
  EXPECT_EQ(m.data, std::string("\x01\x02\xff", 3));
}

TEST_F(MqttTest, BrokerKilledAndRestartedMidSession) {
  Session s(*bridge_, "/mqtt");
  s.subscribe_ok("live/#", 1);
  broker_.kill();
  json status = s.next_reply(10s);
  EXPECT_EQ(status, json({{"type", "status"}, {"upstream", "down"}}));

  json r = s.request(
      {{"type", "publish"}, {"topic", "live/q0"}, {"payload", 0}, {"qos", 0}, {"id", "q0"}});
  EXPECT_EQ(r["type"], "error");
  EXPECT_EQ(r["code"], "upstream_unavailable");
  EXPECT_EQ(r["id"], "q0");
  // QoS 1 while down: buffered, acknowledged only once the broker has it.
  s.send({{"type", "publish"},
          {"topic", "live/q1"},
          {"payload", "kept"},
          {"qos", 1},
          {"retain", true},
          {"id", "q1"}});

  broker_.start();
  std::vector<json> replies;
  for (int i = 0; i < 2; ++i) replies.push_back(s.next_reply(10s));
  EXPECT_NE(
      std::find(replies.begin(), replies.end(), json({{"type", "status"}, {"upstream", "up"}})),
      replies.end());
  EXPECT_NE(std::find(replies.begin(), replies.end(), json({{"type", "ack"}, {"id", "q1"}})),
            replies.end());
  // The buffered publish reached the broker (retained, so a late peer sees it too).
  MqttPeer peer(broker_.uri());
  peer.subscribe("live/q1", 1);
  auto got = peer.next();
  ASSERT_TRUE(got);
  EXPECT_EQ((*got)->get_payload_str(), "kept");
  // The subscription was restored: a new message arrives without a new subscribe.
  peer.publish("live/after", "back", 1);
  json m;
  do {
    m = s.next(10s);
  } while (m["type"] != "message" || m["topic"] != "live/after");
  EXPECT_EQ(m["payload"], "back");
}

TEST_F(MqttTest, BufferFullWhileDownIsRefused) {
  bridge_.reset();
  start_bridge("max_buffered_publishes = 2\n");
  Session s(*bridge_, "/mqtt");
  broker_.kill();
  EXPECT_EQ(s.next_reply(10s)["upstream"], "down");
  for (int i = 0; i < 2; ++i) {
    s.send({{"type", "publish"}, {"topic", "b"}, {"payload", i}, {"qos", 1}, {"id", i}});
  }
  json r = s.request({{"type", "publish"}, {"topic", "b"}, {"payload", 3}, {"qos", 1}, {"id", 3}});
  EXPECT_EQ(r["code"], "upstream_unavailable");
  EXPECT_EQ(r["id"], 3);
}

TEST(MqttUpstreamTest, Mqtt5Upstream) {
  Mosquitto broker;
  WsbridgeInstance bridge(
      "[[listeners]]\nport = ${PORT}\n[upstreams.v5]\nuri = \"" + broker.uri() +
      "\"\nmqtt_version = \"5\"\n[[routes]]\npath = \"/m\"\nadapter = \"mqtt\"\n"
      "upstream = \"v5\"\nallow_subscribe = [\"#\"]\nallow_publish = [\"#\"]\n");
  ASSERT_TRUE(bridge.process->wait_for_output("upstream v5: connected", 10s))
      << bridge.process->output();
  EXPECT_TRUE(broker.wait_for_log("(p5, c1", 1, 2s)) << broker.log();  // protocol 5, clean start
  Session s(bridge, "/m");
  s.subscribe_ok("five/#", 1);
  MqttPeer peer(broker.uri());
  peer.publish("five/a", "\"hi\"", 1);
  json m = s.next();
  EXPECT_EQ(m["topic"], "five/a");
  EXPECT_EQ(m["payload"], "hi");
}

TEST(MqttUpstreamTest, TlsUpstreamWithCaVerification) {
  // A throwaway CA and server certificate for 127.0.0.1, readable by the mosquitto user.
  char dir_template[] = "/tmp/wsbridge-tls-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string script =
      "set -e; cd " + dir +
      "; chmod 755 .;"
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 "
      "-subj '/CN=wsbridge test CA' 2>/dev/null;"
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
      "-subj '/CN=127.0.0.1' 2>/dev/null;"
      "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext;"
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt "
      "-days 2 -extfile san.ext 2>/dev/null; chmod 644 *";
  ChildProcess gen = ChildProcess::spawn({"/bin/bash", "-c", script});
  ASSERT_EQ(gen.wait_exit(60s), 0) << gen.output();

  const uint16_t tls_port = free_tcp_port();
  Mosquitto broker("listener " + std::to_string(tls_port) + " 127.0.0.1\ncafile " + dir +
                   "/ca.crt\ncertfile " + dir + "/server.crt\nkeyfile " + dir + "/server.key\n");
  ASSERT_TRUE(wait_port_open("127.0.0.1", tls_port, 5s));
  WsbridgeInstance bridge(
      "[[listeners]]\nport = ${PORT}\n[upstreams.tls]\nuri = \"ssl://127.0.0.1:" +
      std::to_string(tls_port) + "\"\nca_file = \"" + dir +
      "/ca.crt\"\n[[routes]]\npath = \"/m\"\nadapter = \"mqtt\"\n"
      "upstream = \"tls\"\nallow_subscribe = [\"#\"]\nallow_publish = [\"#\"]\n");
  ASSERT_TRUE(bridge.process->wait_for_output("upstream tls: connected", 10s))
      << bridge.process->output() << broker.log();
  Session s(bridge, "/m");
  s.subscribe_ok("secure/#", 1);
  MqttPeer peer(broker.uri());  // the plain listener of the same broker
  peer.publish("secure/x", "1", 1);
  EXPECT_EQ(s.next()["topic"], "secure/x");
  ChildProcess(ChildProcess::spawn({"/bin/rm", "-rf", dir})).wait_exit(10s);
}

TEST(MqttUpstreamTest, TlsUpstreamWithAnUntrustedCertificateStaysDown) {
  // The system CA store does not know a self-signed broker: the bridge must refuse it.
  char dir_template[] = "/tmp/wsbridge-tls-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  ChildProcess gen = ChildProcess::spawn(
      {"/bin/bash", "-c",
       "set -e; cd " + dir +
           "; chmod 755 .; openssl req -x509 -newkey rsa:2048 -nodes "
           "-keyout k.pem -out c.pem -days 2 -subj '/CN=127.0.0.1' 2>/dev/null; chmod 644 *"});
  ASSERT_EQ(gen.wait_exit(60s), 0) << gen.output();
  const uint16_t tls_port = free_tcp_port();
  Mosquitto broker("listener " + std::to_string(tls_port) + " 127.0.0.1\ncertfile " + dir +
                   "/c.pem\nkeyfile " + dir + "/k.pem\n");
  WsbridgeInstance bridge(
      "[[listeners]]\nport = ${PORT}\n[upstreams.tls]\nuri = \"ssl://127.0.0.1:" +
      std::to_string(tls_port) +
      "\"\n[[routes]]\npath = \"/m\"\n"
      "adapter = \"mqtt\"\nupstream = \"tls\"\nallow_subscribe = [\"#\"]\n");
  EXPECT_TRUE(bridge.process->wait_for_output("upstream tls: cannot connect", 30s))
      << bridge.process->output();
  EXPECT_EQ(bridge.process->output().find("upstream tls: connected"), std::string::npos);
  Session s(bridge, "/m");
  EXPECT_EQ(s.initial_status["upstream"], "down");
  ChildProcess(ChildProcess::spawn({"/bin/rm", "-rf", dir})).wait_exit(10s);
}

TEST_F(MqttTest, UnknownUpstreamIsAConfigErrorWithPosition) {
  const std::string path =
      write_temp_file("bad-mqtt.toml",
                      "[[listeners]]\nport = 1\n[[routes]]\npath = \"/m\"\nadapter = \"mqtt\"\n"
                      "upstream = \"nowhere\"\n");
  ChildProcess p = ChildProcess::spawn({WSBRIDGE_BINARY, "--check-config", path});
  EXPECT_EQ(p.wait_exit(10s), 2);
  EXPECT_NE(p.output().find(path + ":6:12: unknown upstream \"nowhere\""), std::string::npos)
      << p.output();
}

}  // namespace
}  // namespace wsbridge::testing
