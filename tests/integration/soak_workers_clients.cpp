// The short-lived clients of the mixed load: echo traffic, churning mqtt connections, bad input.
#include <thread>

#include "soak_workers.hpp"

namespace wsbridge::testing::soak {

using namespace std::chrono_literals;
using nlohmann::json;

// Echo traffic: text and binary, some compressed, checked one by one; a new connection every
// 200 messages.
void echo_client(const WsbridgeInstance& server, Phase& phase, int index) {
  const std::string who = "echo client " + std::to_string(index);
  long n = 0;
  try {
    while (!phase.stop) {
      ClientOptions opts = server.client("/echo");
      opts.offer_deflate = index == 0;
      opts.timeout = patience(10s);
      WsClient ws = WsClient::connect(opts);
      for (int k = 0; k < 200 && !phase.stop; ++k, ++n) {
        const bool binary = n % 5 == 0;
        const std::string message = "echo-" + std::to_string(index) + "-" + std::to_string(n) +
                                    std::string(static_cast<size_t>(n % 7) * 100, 'x');
        binary ? ws.send_binary(message) : ws.send_text(message);
        const WsClient::Message reply = ws.read_message(patience(10s));
        if (reply.opcode != (binary ? Opcode::kBinary : Opcode::kText) ||
            reply.data != "Echo: " + message) {
          return phase.fail(who, "message " + std::to_string(n) + " came back as " +
                                     std::string(opcode_name(reply.opcode)) + " '" +
                                     reply.data.substr(0, 60) + "'");
        }
        std::this_thread::sleep_for(2ms);
      }
      close_cleanly(ws);
    }
  } catch (const std::exception& e) {
    phase.fail(who, e.what());
  }
  phase.echoes += n;
}

// Short-lived mqtt connections: subscribe (a third of them to the long-lived subscribers'
// soak/q1/#: their leaving must not unsubscribe it for the others), sometimes publish, and
// leave with a close handshake, a FIN or an RST.
void churner(const WsbridgeInstance& server, Phase& phase, int index) {
  const std::string who = "churner " + std::to_string(index);
  long n = 0;
  try {
    for (; !phase.stop; ++n) {
      WsClient ws = open_mqtt(server, "/mqtt", n % 3 == 2);
      if (n % 3 == 0) {
        subscribe_ok(ws, "soak/q1/#", 1, "s");
      } else {
        subscribe_ok(ws, "soak/c/" + std::to_string(index) + "/" + std::to_string(n),
                     static_cast<int>(n % 2), "s");
      }
      if (n % 4 == 0) {
        ws.send_text(json({{"type", "publish"},
                           {"topic", "soak/other/" + std::to_string(index)},
                           {"payload", {{"n", n}}},
                           {"qos", 1},
                           {"id", "p"}})
                         .dump());
        const json r = await_reply(ws, "p", patience(10s));
        if (r.value("type", "") != "ack") return phase.fail(who, "publish: " + r.dump());
      }
      switch ((n / 3) % 3) {
        case 0:
          close_cleanly(ws);
          break;
        case 1:
          ws.tcp().close();
          break;
        default:
          ws.tcp().abort();
          break;
      }
      std::this_thread::sleep_for(5ms);
    }
  } catch (const std::exception& e) {
    phase.fail(who + " (cycle " + std::to_string(n) + ")", e.what());
  }
  phase.churn_cycles += n;
}

// Bad input on a connection of its own: each must get an error frame (with the request's id
// when it had one) and leave the connection open; now and then a connection sends invalid
// UTF-8 and is closed with 1007, alone.
void bad_input_client(const WsbridgeInstance& server, Phase& phase) {
  const std::string who = "bad input client";
  long n = 0;
  try {
    WsClient ws = open_mqtt(server, "/mqtt", false);
    auto expect_error = [&](const std::string& code, const json& id) {
      const json r = next_json(ws, patience(10s));
      if (r.value("type", "") != "error" || r.value("code", "") != code ||
          r.value("id", json()) != id) {
        throw std::runtime_error("input " + std::to_string(n) + ": expected a " + code +
                                 " error with id " + id.dump() + ", got " + r.dump());
      }
    };
    for (; !phase.stop; ++n) {
      switch (n % 7) {
        case 0:
          ws.send_text("{\"type\": \"subscribe\", \"topic\": ");  // not JSON
          expect_error("bad_request", json());
          break;
        case 1:
          ws.send_text(json({{"type", "launch"}, {"id", n}}).dump());
          expect_error("bad_request", n);
          break;
        case 2:
          ws.send_binary(std::string("\x00\x01\x02", 3));
          expect_error("bad_request", json());
          break;
        case 3:
          ws.send_text(json({{"type", "publish"}, {"topic", "soak/+/x"}, {"id", n}}).dump());
          expect_error("bad_request", n);
          break;
        case 4:
          ws.send_text(json({{"type", "subscribe"}, {"topic", "private/x"}, {"id", n}}).dump());
          expect_error("forbidden", n);
          break;
        case 5:
          ws.send_text(
              json({{"type", "subscribe"}, {"topic", "soak/x"}, {"qos", 2}, {"id", n}}).dump());
          expect_error("bad_request", n);
          break;
        default: {
          ws.send_text(json({{"type", "ping"}, {"id", n}}).dump());
          const json r = next_json(ws, patience(10s));
          if (r.value("type", "") != "pong" || r.value("id", json()) != n) {
            throw std::runtime_error("ping " + std::to_string(n) + ": " + r.dump());
          }
        }
      }
      if (n % 50 == 49) {
        WsClient bad = open_mqtt(server, "/mqtt", false);
        bad.send_frame(Opcode::kText, "\xc3\x28 invalid UTF-8");
        const uint16_t code = bad.wait_close(patience(10s));
        if (code != 1007) {
          throw std::runtime_error("invalid UTF-8 closed with " + std::to_string(code));
        }
      }
      std::this_thread::sleep_for(20ms);
    }
    close_cleanly(ws);
  } catch (const std::exception& e) {
    phase.fail(who, e.what());
  }
  phase.bad_inputs += n;
}

}  // namespace wsbridge::testing::soak
