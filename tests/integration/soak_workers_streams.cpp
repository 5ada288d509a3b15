// The QoS 1 and bulk streams of the mixed load: their publishers and their readers (in order,
// slow, stalled).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <thread>

#include "soak_workers.hpp"
#include "support/mqtt_peer.hpp"

namespace wsbridge::testing::soak {

using namespace std::chrono_literals;
using nlohmann::json;

// Long-lived: subscribed to soak/q1/# with QoS 1 for the whole phase; every message of the
// QoS 1 stream must arrive once, in order (payload = sequence number).
void qos1_subscriber(const WsbridgeInstance& server, Phase& phase, int index) {
  const std::string who = "QoS 1 subscriber " + std::to_string(index);
  long expected = 0;
  try {
    WsClient ws = open_mqtt(server, "/mqtt", index % 2 == 1);
    subscribe_ok(ws, "soak/q1/#", 1, "q1");
    ++phase.ready;
    for (;;) {
      const long total = phase.qos1_published.load();
      if (total >= 0 && expected >= total) break;
      if (phase.failures.any()) return;
      // Read only when a message is due (the broker acknowledged it), so a blocking read never
      // waits for nothing (say, after a server PING).
      if (expected >= phase.qos1_sent.load()) {
        if (phase.past_drain_deadline()) throw std::runtime_error("no more messages");
        std::this_thread::sleep_for(5ms);
        continue;
      }
      const json m = next_json(ws, patience(10s));
      if (m.value("type", "") != "message" || m.value("topic", "") != "soak/q1/seq" ||
          m.value("qos", -1) != 1 || m.value("payload", json()) != expected) {
        throw std::runtime_error("expected message " + std::to_string(expected) + ", got " +
                                 m.dump());
      }
      ++expected;
    }
    // Nothing after the last one (no duplicate): the next frame is the pong.
    ws.send_text(R"({"type":"ping","id":"end"})");
    const json pong = next_json(ws, patience(10s));
    if (pong.value("type", "") != "pong") {
      throw std::runtime_error("after the last: " + pong.dump());
    }
    close_cleanly(ws);
  } catch (const std::exception& e) {
    phase.fail(who, std::string(e.what()) + " (had " + std::to_string(expected) + " of " +
                        std::to_string(phase.qos1_published.load()) + " messages" +
                        phase.since_stop() + ")");
  }
}

// The steady QoS 1 stream: one message every 2 ms, each acknowledged by the broker.
void qos1_publisher(const Mosquitto& broker, Phase& phase) {
  long n = 0;
  try {
    MqttPeer peer(broker.uri(), "soak-qos1");
    auto next = Clock::now();
    while (!phase.stop) {
      peer.publish("soak/q1/seq", std::to_string(n), 1);  // returns with the PUBACK
      phase.qos1_sent = ++n;
      next += 2ms;
      if (next > Clock::now()) {
        std::this_thread::sleep_until(next);
      } else {
        next = Clock::now();  // behind (a slow build): no burst to catch up
      }
    }
  } catch (const std::exception& e) {
    phase.fail("QoS 1 publisher", e.what());
  }
  phase.qos1_published = n;
}

// The bulk QoS 0 stream for the slow readers: 16 KiB every 5 ms (~3 MB/s), then one QoS 1
// end marker, which is never dropped and arrives after all of them.
void bulk_publisher(const Mosquitto& broker, Phase& phase) {
  long n = 0;
  try {
    MqttPeer peer(broker.uri(), "soak-bulk");
    const std::string payload(size_t{16} * 1024, 'b');
    auto next = Clock::now();
    while (!phase.stop) {
      peer.publish("soak/bulk/data", payload, 0);
      phase.bulk_sent = ++n;
      next += 5ms;
      if (next > Clock::now()) {
        std::this_thread::sleep_until(next);
      } else {
        next = Clock::now();
      }
    }
    peer.publish("soak/bulk/end", "\"end\"", 1);
  } catch (const std::exception& e) {
    phase.fail("bulk publisher", e.what());
  }
  phase.bulk_published = n;
}

// Reads the bulk stream with a 20 ms pause per message on a drop_oldest route: it falls behind, and
// every message must be either delivered or reported as dropped.
void slow_reader(const WsbridgeInstance& server, Phase& phase) {
  long delivered = 0;
  long dropped = 0;
  bool end_seen = false;
  auto state = [&] {
    return "delivered " + std::to_string(delivered) + " + dropped " + std::to_string(dropped) +
           " of " + std::to_string(phase.bulk_published.load()) +
           (end_seen ? ", end marker seen" : ", no end marker") + phase.since_stop();
  };
  try {
    WsClient ws = open_mqtt(server, "/slow", false);
    // QoS 1, so the end marker keeps its QoS 1 (not droppable); the bulk stays QoS 0.
    subscribe_ok(ws, "soak/bulk/#", 1, "bulk");
    ++phase.ready;
    for (;;) {
      const long total = phase.bulk_published.load();
      if (end_seen && delivered + dropped == total) break;
      if (phase.failures.any()) return;
      // A frame is due when a message sent is neither delivered nor reported dropped yet (a
      // drop is reported once the queue is empty), or the end marker was sent and not seen.
      if (delivered + dropped >= phase.bulk_sent.load() && (end_seen || total < 0)) {
        if (phase.past_drain_deadline()) throw std::runtime_error("no more messages");
        std::this_thread::sleep_for(5ms);
        continue;
      }
      const json m = next_json(ws, patience(10s));
      const std::string type = m.value("type", "");
      if (type == "status" && m.contains("dropped")) {
        dropped += m["dropped"].get<long>();
      } else if (type == "message" && m.value("topic", "") == "soak/bulk/data") {
        if (end_seen) throw std::runtime_error("bulk data after the end marker");
        ++delivered;
        if (!phase.stop) std::this_thread::sleep_for(20ms);
      } else if (type == "message" && m.value("topic", "") == "soak/bulk/end") {
        end_seen = true;
      } else {
        throw std::runtime_error("unexpected " + m.dump());
      }
      if (total >= 0 && delivered + dropped > total) throw std::runtime_error("too many");
    }
    phase.slow_delivered = delivered;
    phase.slow_dropped = dropped;
    if (delivered == 0) throw std::runtime_error("nothing delivered");
    ws.send_text(R"({"type":"ping","id":"end"})");
    if (await_reply(ws, "end").value("type", "") != "pong") throw std::runtime_error("no pong");
    close_cleanly(ws);
  } catch (const std::exception& e) {
    phase.fail("slow reader", std::string(e.what()) + " (" + state() + ")");
  }
}

namespace {

// A WebSocket on a socket whose receive buffer is small from the start (set before connect():
// shrinking it on a connected socket makes the kernel drop data it already advertised room
// for, and the sender's retransmission backoff then stalls the connection for a long while).
WsClient connect_with_small_receive_buffer(const WsbridgeInstance& server,
                                           const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  TcpConn conn = TcpConn::adopt(fd);  // owns it from here on (and makes it non-blocking)
  const int rcvbuf = 64 * 1024;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server.port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) throw std::runtime_error("connect() failed");
    pollfd p{fd, POLLOUT, 0};
    int error = 0;
    socklen_t len = sizeof error;
    if (::poll(&p, 1, 10000) != 1 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 ||
        error != 0) {
      throw std::runtime_error("connect() did not complete");
    }
  }
  conn.send_all(build_handshake_request(server.client(path)));
  const HttpResponse response = conn.read_http_response(patience(10s));
  if (response.status != 101) {
    throw std::runtime_error("handshake answered " + std::to_string(response.status));
  }
  return WsClient::adopt(std::move(conn));
}

}  // namespace

// Subscribes to the bulk stream on a route with the default slow_consumer policy and never
// reads: it is closed with 1013 while everyone else carries on.
void stalled_reader(const WsbridgeInstance& server, Phase& phase) {
  const std::string who = "stalled reader";
  try {
    // A small receive buffer, so the bulk stream overflows the server's queue soon even in a
    // slow build.
    WsClient ws = connect_with_small_receive_buffer(server, "/strict");
    const json status = next_json(ws, patience(10s));
    if (status.value("type", "") != "status") throw std::runtime_error("first: " + status.dump());
    subscribe_ok(ws, "soak/bulk/#", 0, "bulk");
    ++phase.ready;
    // Reads again once the server gave up on it (or the phase ended), to receive the close: the
    // close waits for the rest of a frame the socket took part of, and a peer that still does not
    // read within 5 s is dropped without one (1006), which a phase longer than that would reach.
    while (!phase.stop && server.process->output().find("is not reading") == std::string::npos) {
      std::this_thread::sleep_for(50ms);
    }
    if (phase.failures.any()) return;
    const uint16_t code = ws.wait_close(patience(30s));  // drains what was sent before it
    if (code != 1013) phase.fail(who, "closed with " + std::to_string(code) + ", not 1013");
  } catch (const std::exception& e) {
    phase.fail(who, e.what());
  }
}

}  // namespace wsbridge::testing::soak
