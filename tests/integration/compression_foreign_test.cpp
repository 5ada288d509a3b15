// permessage-deflate (#20) with clients nobody on this project wrote: python3-websockets, Node's
// `ws` with perMessageDeflate, wscat and headless Chromium, each against a real wsbridge (and a
// real mosquitto for the fan-out). The checks live in the client scripts
// (tests/compression/websockets_client.py, tests/e2e/compression_*.mjs): every negotiated
// response parameter, byte-exact echoes of 1 B to 1 MiB, the 1009 and 1007 closes, and the RSV1
// bit of each server frame read off the wire, so a server that stops compressing fails. Here we
// start the servers, run one script case per test and show its output when it fails.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "integration/wsbridge_instance.hpp"
#include "support/mosquitto.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

const std::string kSource = WSBRIDGE_SOURCE_DIR;
const std::string kPython = "/usr/bin/python3";  // Debian's, with python3-websockets
const std::string kPythonClient = kSource + "/tests/compression/websockets_client.py";
const std::string kE2e = kSource + "/tests/e2e";

// The echo routes: /echo with the defaults (shared, threshold 128, window 15, 1 MiB), a route
// with a 10-bit window, one with compression off and one with lws' per-connection deflate.
constexpr const char* kEchoConfig = R"(
[server]
static_dir = "${SOURCE_DIR}/web"
[[listeners]]
address = "127.0.0.1"
port = ${PORT}
[[routes]]
path = "/echo"
adapter = "echo"
max_message_bytes = 1048576
[[routes]]
path = "/echo10"
adapter = "echo"
compression_window_bits = 10
[[routes]]
path = "/echo-off"
adapter = "echo"
compression = "off"
[[routes]]
path = "/echo-lws"
adapter = "echo"
compression = "per_connection"
)";

// Runs a client script to its end (at most 60 s); its output is the failure message.
void run_client(std::vector<std::string> argv) {
  auto child = ChildProcess::spawn(argv);
  const std::optional<int> status = child.wait_exit(60s);
  if (!status) child.signal(SIGKILL);
  std::string command;
  for (const auto& a : argv) command += a + " ";
  EXPECT_EQ(status, std::optional<int>(0)) << command << "\n" << child.output();
}

void require_node_modules() {
  if (std::string(WSBRIDGE_NODE).empty()) GTEST_SKIP() << "node not found at configure time";
  if (!std::filesystem::exists(kE2e + "/node_modules/ws") ||
      !std::filesystem::exists(kE2e + "/node_modules/wscat") ||
      !std::filesystem::exists(kE2e + "/node_modules/playwright-core")) {
    FAIL() << "tests/e2e/node_modules is incomplete: run (cd tests/e2e && npm ci)";
  }
}

class CompressionEcho : public ::testing::Test {
 protected:
  void python(const std::string& test_case) {
    run_client({kPython, kPythonClient, test_case, "--port", std::to_string(server_.port)});
  }
  void node(const std::string& script, std::vector<std::string> args) {
    require_node_modules();
    std::vector<std::string> argv = {WSBRIDGE_NODE, kE2e + "/" + script};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--port", std::to_string(server_.port)});
    run_client(argv);
  }
  WsbridgeInstance server_{kEchoConfig};
};

// Every combination of the four parameters a client can offer (288 offers): the response is
// exactly the contract's, and compressed messages round-trip (also across messages with no
// context kept, and a window probe that fails if the server deflates with a larger window than
// it announced).
TEST_F(CompressionEcho, PythonWebsocketsEveryOffer) {
  python("offers");
}
// server_max_window_bits=8: declined, or honoured; never a frame the client cannot inflate.
TEST_F(CompressionEcho, PythonWebsocketsWindowBits8) {
  python("window8");
}
// compression_window_bits = 10 is announced unasked, and min(offer, configuration) otherwise.
TEST_F(CompressionEcho, PythonWebsocketsConfiguredWindow) {
  python("configured_window");
}
// 1 B to 1 MiB - 1 KiB, text and binary, byte-exact; RSV1 set from the threshold on when the
// message shrinks, clear below it.
TEST_F(CompressionEcho, PythonWebsocketsEchoSizes) {
  python("echo");
}
// A compressed message that inflates past max_message_bytes closes with 1009.
TEST_F(CompressionEcho, PythonWebsocketsInflatedTooBig) {
  python("too_big");
}
// A compressed message that does not inflate closes with 1007.
TEST_F(CompressionEcho, PythonWebsocketsCorruptStream) {
  python("corrupt");
}
// Invalid offers get no extension; the connection works uncompressed.
TEST_F(CompressionEcho, PythonWebsocketsRefusedOffers) {
  python("refused");
}
// compression = "off": no extension.
TEST_F(CompressionEcho, PythonWebsocketsRouteOff) {
  python("off");
}
// compression = "per_connection" (served as "shared" since lws' own deflate aborted the process):
// every offer still works.
TEST_F(CompressionEcho, PythonWebsocketsPerConnection) {
  python("per_connection");
}

TEST_F(CompressionEcho, NodeWsPerMessageDeflate) {
  node("compression_clients.mjs", {"ws-echo"});
}
TEST_F(CompressionEcho, Wscat) {
  node("compression_clients.mjs", {"wscat"});
}
// Chromium: ws.extensions has server_no_context_takeover; 1 B to 1 MiB echo byte-exact.
TEST_F(CompressionEcho, Chromium) {
  node("compression_browser.mjs", {});
}

// One service thread, so one inflater for every client: compressed messages in fragments from
// two clients interleaved, and whole ones from a third in between, each inflate on their own.
TEST(CompressionOneThread, PythonWebsocketsInterleavedFragments) {
  WsbridgeInstance server(
      "[server]\nthreads = 1\n[[listeners]]\naddress = \"127.0.0.1\"\nport = ${PORT}\n"
      "[[routes]]\npath = \"/echo\"\nadapter = \"echo\"\n");
  run_client({kPython, kPythonClient, "interleaved", "--port", std::to_string(server.port)});
}

// 50 clients on one MQTT topic (python: windows 15, 10 and 9 and some without deflate; Node: all
// with ws' default offer); mosquitto_pub publishes 200 B and 256 KiB of compressible text (and a
// window probe); every client gets each byte-exact, compressed where it agreed to deflate.
class CompressionFanOut : public ::testing::Test {
 protected:
  std::vector<std::string> args() const {
    return {"fanout",
            "--port",
            std::to_string(server_.port),
            "--broker-port",
            std::to_string(broker_.port()),
            "--clients",
            "50"};
  }
  Mosquitto broker_;
  WsbridgeInstance server_{
      "[[listeners]]\naddress = \"127.0.0.1\"\nport = ${PORT}\n"
      "[upstreams.local]\nuri = \"" +
      broker_.uri() +
      "\"\n[[routes]]\npath = \"/mqtt\"\nadapter = \"mqtt\"\n"
      "upstream = \"local\"\nallow_subscribe = [\"fan/#\"]\n"};
};

TEST_F(CompressionFanOut, PythonWebsockets) {
  std::vector<std::string> argv = {kPython, kPythonClient};
  for (const auto& a : args()) argv.push_back(a);
  run_client(argv);
}

TEST_F(CompressionFanOut, NodeWs) {
  require_node_modules();
  std::vector<std::string> argv = {WSBRIDGE_NODE, kE2e + "/compression_clients.mjs"};
  for (const auto& a : args()) argv.push_back(a);
  run_client(argv);
}

}  // namespace
}  // namespace wsbridge::testing
