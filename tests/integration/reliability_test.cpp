// Reliability under load: slow consumers are bounded in memory (drop_oldest or a 1013 close)
// while the other clients keep receiving; a frozen broker (SIGSTOP) is survived.
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include <sys/socket.h>

#include "support/eventually.hpp"
#include "support/mosquitto.hpp"
#include "support/mqtt_peer.hpp"
#include "support/prometheus.hpp"
#include "wsbridge_instance.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;  // sanitizer runtimes keep freed memory: RSS says nothing
#else
constexpr bool kSanitized = false;
#endif

std::string config(const Mosquitto& broker) {
  return R"(
[[listeners]]
port = ${PORT}
[upstreams.local]
uri = ")" +
         broker.uri() + R"("
[[routes]]
path = "/telemetry"
adapter = "mqtt"
upstream = "local"
allow_subscribe = ["#"]
slow_consumer = "drop_oldest"
max_queued_bytes = "4MiB"
idle_timeout = "5m"  # the stalled client answers no pings while the test runs (slow under TSan)
[[routes]]
path = "/strict"
adapter = "mqtt"
upstream = "local"
allow_subscribe = ["#"]
allow_publish = ["flow/#", "drain/#"]
max_queued_bytes = "4MiB"
)";
}

WsClient subscribed(const WsbridgeInstance& server, const std::string& path,
                    const std::string& filter) {
  WsClient ws = WsClient::connect(server.client(path));
  EXPECT_EQ(json::parse(ws.read_message().data)["type"], "status");
  ws.send_text(json({{"type", "subscribe"}, {"topic", filter}, {"id", 1}}).dump());
  EXPECT_EQ(json::parse(ws.read_message().data)["type"], "ack");
  return ws;
}

TEST(ReliabilityTest, SlowConsumerDropsOldestWithinItsBoundAndOthersKeepReceiving) {
  Mosquitto broker;
  WsbridgeInstance server(config(broker) + "[admin]\nport = ${PORT2}\n");  // for /metrics
  ASSERT_TRUE(server.process->wait_for_output("upstream local: connected", 10s));
  WsClient slow = subscribed(server, "/telemetry", "big/#");  // subscribes, then stops reading
  WsClient fast = subscribed(server, "/telemetry", "big/#");
  const long baseline = rss_kib(server.process->pid());

  // 200 MiB through the bridge; under a sanitizer (ten times slower) 24 MiB, which still overflows
  // the stalled client's queue and socket buffers (4 MiB each) three times over.
  constexpr int kMessages = kSanitized ? 24 : 200;
  const std::string payload(1024 * 1024 - 64, 'p');  // ~1 MiB each, ~200 MiB in all
  long peak = baseline;
  // The publisher stays at most two messages ahead of the fast reader, so only the client
  // that stopped reading can overflow its queue (however slow the build under test is).
  std::atomic<int> received{0};
  std::thread publisher([&] {
    MqttPeer peer(broker.uri(), "publisher");
    for (int i = 0; i < kMessages; ++i) {
      const auto deadline = std::chrono::steady_clock::now() + 20s;
      while (received.load() < i - 2 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
      }
      peer.publish("big/" + std::to_string(i), payload, 0);
    }
  });
  struct Joiner {
    std::thread& t;
    ~Joiner() { t.join(); }
  } joiner{publisher};
  for (int i = 0; i < kMessages; ++i) {
    auto m = fast.read_message(20s);  // the fast client gets every message, in order
    const json j = json::parse(m.data);
    ASSERT_EQ(j["topic"], "big/" + std::to_string(i));
    received.store(i + 1);
    if (i % 10 == 0) peak = std::max(peak, rss_kib(server.process->pid()));
  }
  peak = std::max(peak, rss_kib(server.process->pid()));
  if (!kSanitized) {
    // The slow client's queue is bounded by 4 MiB; in-flight copies of a few messages and the
    // allocator's slack make the margin.
    EXPECT_LT(peak - baseline, 96 * 1024)
        << "RSS grew from " << baseline << " to " << peak << " KiB";
  }

  // The slow client catches up: everything is either delivered or reported as dropped.
  int delivered = 0;
  long long dropped = 0;
  while (delivered + dropped < kMessages) {
    const json j = json::parse(slow.read_message(20s).data);
    if (j["type"] == "message") {
      ++delivered;
    } else {
      ASSERT_EQ(j["type"], "status") << j;
      dropped += j["dropped"].get<long long>();
    }
  }
  EXPECT_EQ(delivered + dropped, kMessages);
  EXPECT_GT(dropped, 0);
  EXPECT_GT(delivered, 0);
  // The adapter saw it coming: Connection::send answered "over high water", then "dropped".
  const std::string m = http_get("127.0.0.1", server.port2, "/metrics").body;
  EXPECT_GT(sample(m, R"(wsbridge_upstream_deliveries_behind_total{upstream="local",)"
                      R"(result="over_high_water"})")
                .value_or(0),
            0);
  EXPECT_GT(sample(m, R"(wsbridge_upstream_deliveries_behind_total{upstream="local",)"
                      R"(result="dropped"})")
                .value_or(0),
            0);
}

TEST(ReliabilityTest, SlowConsumerIsDisconnectedWith1013ByDefault) {
  Mosquitto broker;
  WsbridgeInstance server(config(broker));
  ASSERT_TRUE(server.process->wait_for_output("upstream local: connected", 10s));
  WsClient slow = subscribed(server, "/strict", "flood/#");
  WsClient fast = subscribed(server, "/strict", "flood/#");
  const std::string payload(512 * 1024, 'f');
  MqttPeer peer(broker.uri(), "publisher");
  // Up to 30 MiB: more than the slow client's socket buffers + 4 MiB. The slow client reads
  // again as soon as the server gave up on it, to receive the close: a close waits for the rest
  // of a frame the socket took part of, and a peer that does not read within 5 s is dropped
  // without one (1006), which a slow sanitizer build could otherwise reach mid-loop.
  bool gave_up = false;
  for (int i = 0; i < 60 && !gave_up; ++i) {
    peer.publish("flood/x", payload, 0);
    EXPECT_EQ(fast.read_message(20s).opcode, Opcode::kText);  // the fast client keeps up
    gave_up = server.process->output().find("is not reading") != std::string::npos;
  }
  EXPECT_TRUE(server.process->wait_for_output("is not reading", 20s));
  EXPECT_EQ(slow.wait_close(20s), 1013);
}

// [limits] unread_output_bytes counts a frame a client stopped reading in the middle of. Such a
// client is never paused by its adapter (the transport stops reading from it until the frame is
// out, so the adapter is asked for nothing more), and the frame is out of its queue. Four clients
// are each echoed 12 MiB they do not read (about 8 MiB of it past the kernel's buffers) by one
// thread whose share is the route's 16 MiB: the largest are closed (1013) until the rest fits,
// and the others get their whole echo and stay open. (Uncounted, all four kept theirs: closed 0.)
TEST(ReliabilityTest, ClientsStoppedInsideAFrameAreBoundedTogether) {
  WsbridgeInstance server(R"(
[server]
threads = 1
[limits]
unread_output_bytes = "1MiB"
[[listeners]]
port = ${PORT}
[admin]
port = ${PORT2}
[[routes]]
path = "/echo"
adapter = "echo"
max_message_bytes = "16MiB"
max_queued_bytes = "16MiB"
idle_timeout = "5m"
)");
  constexpr int kClients = 4;
  std::string payload(12 * 1024 * 1024, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i % 251);
  std::vector<WsClient> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(WsClient::connect(server.client("/echo")));
    const int receive_buffer = 256 * 1024;
    setsockopt(clients.back().tcp().fd(), SOL_SOCKET, SO_RCVBUF, &receive_buffer,
               sizeof receive_buffer);
    clients.back().send_binary(payload, false);
  }
  const auto closed = [&] {
    return static_cast<int>(sample(http_get("127.0.0.1", server.port2, "/metrics").body,
                                   R"(wsbridge_queue_overflow_closes_total{route="/echo"})")
                                .value_or(0));
  };
  ASSERT_TRUE(eventually([&] { return closed() >= 1; }, 10s)) << "closed: " << closed();
  int open = 0;
  for (auto& ws : clients) {
    try {
      const auto m = ws.read_message(20s);
      if (m.opcode != Opcode::kBinary) continue;  // its close
      EXPECT_TRUE(m.data == payload) << "an echo arrived cut or corrupted";
      ws.send_text("still open?");
      if (ws.read_message(20s).data == "still open?") ++open;
    } catch (const std::exception&) {  // dropped inside its frame: EOF
    }
  }
  EXPECT_GE(open, 1) << "every client was closed: one at its own bound always fits";
  EXPECT_EQ(open + closed(), kClients);
}

TEST(ReliabilityTest, FrozenBrokerIsSurvivedAndResumed) {
  Mosquitto broker;
  WsbridgeInstance server(config(broker) + "\n[upstreams.local2]\nuri = \"" + broker.uri() +
                          "\"\n");
  ASSERT_TRUE(server.process->wait_for_output("upstream local: connected", 10s));
  WsClient ws = subscribed(server, "/telemetry", "cold/#");
  broker.freeze();  // SIGSTOP: a hung upstream, the TCP connection stays open
  // The bridge keeps serving other work meanwhile.
  EXPECT_EQ(http_get("127.0.0.1", server.port, "/healthz").status, 200);
  ws.send_text(R"({"type":"ping","id":"p"})");
  EXPECT_EQ(json::parse(ws.read_message(5s).data)["type"], "pong");
  broker.thaw();
  MqttPeer peer(broker.uri());
  peer.publish("cold/x", "thawed", 1);
  json m;
  do {
    m = json::parse(ws.read_message(20s).data);
  } while (m["type"] != "message");
  EXPECT_EQ(m["payload"], "thawed");
}

std::string metrics(const WsbridgeInstance& server) {
  return http_get("127.0.0.1", server.port2, "/metrics").body;
}

// #8.2: a broker that stops taking publishes (frozen: SIGSTOP) stops reading from the clients
// publishing to it (lws rx flow control) instead of buffering without bound; once it is back,
// every publish is acknowledged and delivered.
TEST(ReliabilityTest, FrozenBrokerPausesFastPublishersAndLosesNothing) {
  Mosquitto broker;
  WsbridgeInstance server(config(broker) + "[admin]\nport = ${PORT2}\n");
  ASSERT_TRUE(server.process->wait_for_output("upstream local: connected", 10s));
  MqttPeer sink(broker.uri(), "sink");
  sink.subscribe("flow/#", 1);
  WsClient ws = WsClient::connect(server.client("/strict"));
  EXPECT_EQ(json::parse(ws.read_message().data)["type"], "status");
  broker.freeze();
  constexpr int kPublishes = 400;  // above the 256 a session may have unfinished upstream
  for (int i = 0; i < kPublishes; ++i) {
    ws.send_text(json({{"type", "publish"},
                       {"topic", "flow/t"},
                       {"payload", "n" + std::to_string(i)},
                       {"qos", 1},
                       {"id", i}})
                     .dump());
  }
  bool paused = false;
  for (int i = 0; i < 100 && !paused; ++i) {
    paused = metrics(server).find("wsbridge_connections_reading_paused{route=\"/strict\"} 1") !=
             std::string::npos;
    if (!paused) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(paused) << "the publisher was never paused while the broker was frozen";
  broker.thaw();
  std::set<int> acked;
  while (acked.size() < kPublishes) {
    json m = json::parse(ws.read_message(30s).data);
    if (m["type"] == "status") continue;
    ASSERT_EQ(m["type"], "ack") << m.dump() << " after " << acked.size() << " acks";
    acked.insert(m["id"].get<int>());
  }
  for (int i = 0; i < kPublishes; ++i) {
    auto m = sink.next(10s);
    ASSERT_TRUE(m) << "message " << i << " never reached the broker's subscriber";
    EXPECT_EQ((*m)->to_string(), "n" + std::to_string(i));
  }
  EXPECT_NE(metrics(server).find("wsbridge_connections_reading_paused{route=\"/strict\"} 0"),
            std::string::npos);
}

// #8.3: SIGTERM waits for the broker to acknowledge a QoS 1 publish in flight, answers the
// client, and only then closes with 1012: an acknowledged publish is never lost.
TEST(ReliabilityTest, ShutdownWaitsForBrokerAcksBeforeGoingAway) {
  Mosquitto broker;
  WsbridgeInstance server("[server]\nshutdown_timeout = \"10s\"\n" + config(broker));
  ASSERT_TRUE(server.process->wait_for_output("upstream local: connected", 10s));
  MqttPeer sink(broker.uri(), "sink");
  sink.subscribe("drain/#", 1);
  WsClient ws = WsClient::connect(server.client("/strict"));
  EXPECT_EQ(json::parse(ws.read_message().data)["type"], "status");
  broker.freeze();
  ws.send_text(R"({"type":"publish","topic":"drain/x","payload":"kept","qos":1,"id":"last"})");
  std::this_thread::sleep_for(300ms);
  server.process->signal(SIGTERM);
  std::this_thread::sleep_for(700ms);
  broker.thaw();
  json m;
  do {
    auto message = ws.read_message(10s);
    ASSERT_EQ(message.opcode, Opcode::kText) << "closed before the ack: " << message.close_code();
    m = json::parse(message.data);
  } while (m["type"] == "status");
  EXPECT_EQ(m["type"], "ack");
  EXPECT_EQ(m["id"], "last");
  EXPECT_EQ(ws.wait_close(10s), 1012);
  auto delivered = sink.next(10s);
  ASSERT_TRUE(delivered);
  EXPECT_EQ((*delivered)->to_string(), "kept");
  EXPECT_EQ(server.process->wait_exit(10s), 0);
}

// #8.4: SIGHUP reloads routes and their auth without dropping connections; an invalid file is
// refused with its position, a change that needs a restart is refused too; each is counted.
TEST(ReliabilityTest, HotReloadKeepsConnectionsAndRefusesBadConfigs) {
  const std::string v1 = R"(
[admin]
port = ${PORT2}
[[listeners]]
port = ${PORT}
[[routes]]
path = "/a"
adapter = "echo"
prefix = "v1: "
)";
  WsbridgeInstance server(v1);
  auto write_config = [&](std::string text) { server.rewrite_config(std::move(text)); };
  auto reload_and_wait = [&](const std::string& needle, int nth) {
    server.process->signal(SIGHUP);
    for (int i = 0; i < 200; ++i) {
      const std::string out = server.process->output();
      int seen = 0;
      for (auto p = out.find(needle); p != std::string::npos; p = out.find(needle, p + 1)) ++seen;
      if (seen >= nth) return true;
      std::this_thread::sleep_for(25ms);
    }
    return false;
  };
  WsClient old = WsClient::connect(server.client("/a"));
  old.send_text("x");
  EXPECT_EQ(old.read_message().data, "v1: x");

  std::string v2 = v1;
  WsbridgeInstance::replace_all(v2, "v1: ", "v2: ");
  v2 += R"(
[[routes]]
path = "/b"
adapter = "echo"
[routes.auth]
allowed_origins = ["https://ok.example"]
allow_missing_origin = false
)";
  write_config(v2);
  ASSERT_TRUE(reload_and_wait("configuration reloaded", 1)) << server.process->output();
  old.send_text("y");
  EXPECT_EQ(old.read_message().data, "v1: y") << "an open connection keeps its configuration";
  WsClient fresh = WsClient::connect(server.client("/a"));
  fresh.send_text("z");
  EXPECT_EQ(fresh.read_message().data, "v2: z");
  ClientOptions with_origin = server.client("/b");
  with_origin.extra_headers = {{"Origin", "https://ok.example"}};
  WsClient b = WsClient::connect(with_origin);
  b.send_text("b");
  EXPECT_EQ(b.read_message().data, "b");
  try {
    WsClient::connect(server.client("/b"));
    ADD_FAILURE() << "the new route's origin rule was not applied";
  } catch (const HandshakeError& e) {
    EXPECT_EQ(e.response().status, 403);
  }

  // A broken file: refused with its position; everything goes on as before.
  write_config(v2 + "\n[[routes]]\npath = \"/c\"\nadapter = \"echo\"\nprefx = 1\n");
  ASSERT_TRUE(reload_and_wait("reload failed", 1));
  EXPECT_NE(server.process->output().find(server.config_path + ":"), std::string::npos);
  EXPECT_NE(server.process->output().find("prefx"), std::string::npos);
  WsClient still = WsClient::connect(server.client("/a"));
  still.send_text("s");
  EXPECT_EQ(still.read_message().data, "v2: s");

  // A change only a restart can make (the listening address): refused.
  std::string v3 = v2;
  WsbridgeInstance::replace_all(v3, "port = ${PORT}\n", "port = ${PORT}\naddress = \"::1\"\n");
  write_config(v3);
  ASSERT_TRUE(reload_and_wait("that needs a restart", 1));
  old.send_text("w");
  EXPECT_EQ(old.read_message().data, "v1: w");

  const std::string m = metrics(server);
  EXPECT_NE(m.find("wsbridge_config_reloads_total{outcome=\"ok\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("wsbridge_config_reloads_total{outcome=\"invalid\"} 1"), std::string::npos);
  EXPECT_NE(m.find("wsbridge_config_reloads_total{outcome=\"refused\"} 1"), std::string::npos);
}

}  // namespace
}  // namespace wsbridge::testing
