#include "soak_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "support/mqtt_peer.hpp"

namespace wsbridge::testing::soak {

using namespace std::chrono_literals;
using nlohmann::json;

// ---- JSON-protocol helpers ---------------------------------------------------------------------

json next_json(WsClient& ws, std::chrono::milliseconds timeout) {
  WsClient::Message m = ws.read_message(timeout);
  if (m.opcode == Opcode::kClose) {
    throw std::runtime_error("closed by the server with " + std::to_string(m.close_code()) + " " +
                             m.close_reason());
  }
  if (m.opcode != Opcode::kText) throw std::runtime_error("a binary frame on a JSON route");
  return json::parse(m.data);
}

// The reply (ack, error or pong) carrying `id`; messages and status frames on the way are
// skipped. A reply with another id is a protocol violation.
json await_reply(WsClient& ws, const json& id, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    json j = next_json(ws, std::max(left, 1ms));
    const std::string type = j.value("type", "");
    if (type == "message" || type == "status") continue;
    if (j.value("id", json()) != id) {
      throw std::runtime_error("expected a reply to " + id.dump() + ", got " + j.dump());
    }
    return j;
  }
}

// A connection to an mqtt route, past the first status frame (which must say the broker is up).
WsClient open_mqtt(const WsbridgeInstance& server, const std::string& path, bool deflate) {
  ClientOptions opts = server.client(path);
  opts.offer_deflate = deflate;
  opts.timeout = patience(10s);
  WsClient ws = WsClient::connect(opts);
  const json status = next_json(ws, patience(10s));
  if (status.value("type", "") != "status" || status.value("upstream", "") != "up") {
    throw std::runtime_error("first frame is not status up: " + status.dump());
  }
  return ws;
}

void subscribe_ok(WsClient& ws, const std::string& filter, int qos, const json& id) {
  ws.send_text(json({{"type", "subscribe"}, {"topic", filter}, {"qos", qos}, {"id", id}}).dump());
  const json r = await_reply(ws, id, patience(10s));
  if (r.value("type", "") != "ack") {
    throw std::runtime_error("subscribe " + filter + ": " + r.dump());
  }
}

void close_cleanly(WsClient& ws) {
  ws.send_close(1000);
  const uint16_t code = ws.wait_close(patience(10s));
  if (code != 1000) throw std::runtime_error("close answered with " + std::to_string(code));
}

// Waits until the upstream is connected (a fresh connection's status frame says "up").
bool wait_upstream_up(const WsbridgeInstance& server) {
  const auto deadline = Clock::now() + patience(10s);
  while (Clock::now() < deadline) {
    try {
      WsClient ws = open_mqtt(server, "/mqtt", false);
      close_cleanly(ws);
      return true;
    } catch (const std::exception&) {
      std::this_thread::sleep_for(100ms);
    }
  }
  return false;
}

// A fresh client still gets the whole service: subscribe, and a broker message through it.
void expect_fresh_client_served(const WsbridgeInstance& server, const Mosquitto& broker,
                                const std::string& topic) {
  try {
    WsClient ws = open_mqtt(server, "/mqtt", false);
    subscribe_ok(ws, topic, 1, "fresh");
    MqttPeer peer(broker.uri(), "fresh");
    peer.publish(topic, "\"still here\"", 1);
    json m;
    do {
      m = next_json(ws, patience(10s));
    } while (m.value("type", "") != "message");
    EXPECT_EQ(m["topic"], topic);
    EXPECT_EQ(m["payload"], "still here");
    close_cleanly(ws);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "a fresh client was not served: " << e.what();
  }
}

}  // namespace wsbridge::testing::soak
