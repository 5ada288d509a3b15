// Operating wsbridge: Prometheus metrics on the admin listener moving under a scripted session,
// JSON logs with an access line per connection, the systemd unit, and the installed tree.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "support/eventually.hpp"
#include "support/mosquitto.hpp"
#include "support/mqtt_peer.hpp"
#include "support/prometheus.hpp"
#include "wsbridge_instance.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("WSBRIDGE_TEST_ADMIN_TOKEN", "admin-secret", 1);
    server_.emplace(R"(
[admin]
port = ${PORT2}
token_env = "WSBRIDGE_TEST_ADMIN_TOKEN"
[[listeners]]
port = ${PORT}
[upstreams.local]
uri = ")" + broker_.uri() +
                    R"("
[[routes]]
path = "/echo"
adapter = "echo"
[[routes]]
path = "/mqtt"
adapter = "mqtt"
upstream = "local"
allow_subscribe = ["#"]
[[routes]]
path = "/private"
adapter = "echo"
[routes.auth]
api_keys = true
[[api_keys]]
name = "k"
sha256 = "1cad2248e8fecd0a5a5f693d28225ed3c8d0acf2fce3284800bf2c31a8a1947c"
)");
    ASSERT_TRUE(server_->process->wait_for_output("upstream local: connected", 10s));
  }
  std::string metrics() {
    HttpResponse r = http_get("127.0.0.1", server_->port2, "/metrics",
                              {{"Authorization", "Bearer admin-secret"}});
    EXPECT_EQ(r.status, 200);
    return r.body;
  }
  Mosquitto broker_;
  std::optional<WsbridgeInstance> server_;
};

TEST_F(MetricsTest, AdminListenerNeedsItsTokenAndIsNotPublic) {
  EXPECT_EQ(http_get("127.0.0.1", server_->port2, "/metrics").status, 401);
  EXPECT_EQ(
      http_get("127.0.0.1", server_->port2, "/metrics", {{"Authorization", "Bearer wrong-secret"}})
          .status,
      401);
  HttpResponse ok =
      http_get("127.0.0.1", server_->port2, "/metrics", {{"Authorization", "Bearer admin-secret"}});
  EXPECT_EQ(ok.status, 200);
  EXPECT_NE(ok.header("Content-Type").value_or("").find("text/plain"), std::string::npos);
  EXPECT_NE(ok.body.find("# TYPE wsbridge_connections gauge"), std::string::npos);
  EXPECT_EQ(http_get("127.0.0.1", server_->port, "/metrics").status, 404);  // public listener
  EXPECT_EQ(http_get("127.0.0.1", server_->port2, "/healthz").status, 200);
}

// An admin body declared over 1 MiB is refused at its head: it waited for the body (and answered
// "100 Continue" to a client that asked), then dropped the connection after 10 s without a status
// when none came (a hostile probe). The body at the limit is still read and answered.
TEST_F(MetricsTest, AnAdminBodyDeclaredOverTheLimitIsRefusedAtOnce) {
  // (Without the body; asking for a 100 first; and with the body's start sent behind the head,
  // which a close right after the answer turned into a reset that lost the answer.)
  for (const std::string& expect :
       {std::string(), std::string("Expect: 100-continue\r\n"), "\r\n" + std::string(65536, ' ')}) {
    TcpConn conn = TcpConn::connect("127.0.0.1", server_->port2);
    const bool body_follows = expect.starts_with("\r\n");
    conn.send_all(
        "POST /api/v1/push HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer admin-secret\r\n"
        "Content-Type: application/json\r\nContent-Length: 1048577\r\n" +
        expect + (body_follows ? "" : "\r\n"));
    const HttpResponse r = conn.read_http_response(2s);
    EXPECT_EQ(r.status, 413) << expect.size();
    EXPECT_NE(r.body.find("over 1 MiB"), std::string::npos) << r.body;
    EXPECT_EQ(r.header("Connection").value_or(""), "close");
  }
  // At the limit: read, and judged as JSON (an array of spaces around null is not a push).
  TcpConn conn = TcpConn::connect("127.0.0.1", server_->port2);
  conn.send_all(
      "POST /api/v1/push HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer admin-secret\r\n"
      "Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n" +
      std::string(1048576 - 4, ' ') + "null");
  EXPECT_EQ(conn.read_http_response(5s).status, 400);
}

TEST_F(MetricsTest, ValuesMoveWithAScriptedSession) {
  std::string m = metrics();
  EXPECT_EQ(sample(m, R"(wsbridge_connections{route="/echo"})"), 0);
  EXPECT_EQ(sample(m, R"(wsbridge_upstream_up{upstream="local"})"), 1);
  {
    WsClient ws = WsClient::connect(server_->client("/echo"));
    for (int i = 0; i < 3; ++i) {
      ws.send_text("12345");
      ws.read_message();
    }
    // (The client may read the last echo before the service thread has counted its write.)
    const auto counted = std::chrono::steady_clock::now() + 5s;
    do {
      m = metrics();
    } while (sample(m, R"(wsbridge_messages_sent_total{route="/echo"})") < 3 &&
             std::chrono::steady_clock::now() < counted);
    EXPECT_EQ(sample(m, R"(wsbridge_connections{route="/echo"})"), 1);
    EXPECT_EQ(sample(m, R"(wsbridge_connections_total{route="/echo"})"), 1);
    EXPECT_EQ(sample(m, R"(wsbridge_messages_received_total{route="/echo"})"), 3);
    EXPECT_EQ(sample(m, R"(wsbridge_messages_sent_total{route="/echo"})"), 3);
    EXPECT_EQ(sample(m, R"(wsbridge_received_bytes_total{route="/echo"})"), 15);
    ws.send_close(1000);
    ws.wait_close();
  }
  const auto closed = std::chrono::steady_clock::now() + 5s;
  while (sample(metrics(), R"(wsbridge_connections{route="/echo"})") != 0 &&
         std::chrono::steady_clock::now() < closed) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(sample(metrics(), R"(wsbridge_connections{route="/echo"})"), 0);

  // Refusals by reason, and authentication failures.
  EXPECT_THROW(WsClient::connect(server_->client("/nowhere")), HandshakeError);
  EXPECT_THROW(WsClient::connect(server_->client("/private")), HandshakeError);
  m = metrics();
  EXPECT_EQ(sample(m, R"(wsbridge_connections_refused_total{reason="not_found"})"), 1);
  EXPECT_EQ(sample(m, R"(wsbridge_auth_failures_total{reason="missing_credentials"})"), 1);

  // Fan-out latency from the broker to the frames queued for subscribers.
  WsClient sub = WsClient::connect(server_->client("/mqtt"));
  sub.read_message();  // status
  sub.send_text(R"({"type":"subscribe","topic":"m/#","id":1})");
  sub.read_message();  // ack
  MqttPeer peer(broker_.uri());
  for (int i = 0; i < 5; ++i) peer.publish("m/x", std::to_string(i), 0);
  for (int i = 0; i < 5; ++i) sub.read_message();
  // The worker counts a message after queuing its frames: the client may see it first.
  const auto counted = std::chrono::steady_clock::now() + 5s;
  while (sample(metrics(), R"(wsbridge_fanout_latency_seconds_count{upstream="local"})") != 5 &&
         std::chrono::steady_clock::now() < counted) {
    std::this_thread::sleep_for(20ms);
  }
  m = metrics();
  EXPECT_EQ(sample(m, R"(wsbridge_upstream_messages_total{upstream="local"})"), 5);
  EXPECT_EQ(sample(m, R"(wsbridge_fanout_latency_seconds_count{upstream="local"})"), 5);
  EXPECT_EQ(sample(m, R"(wsbridge_fanout_latency_seconds_bucket{upstream="local",le="+Inf"})"), 5);

  // The broker goes away: the upstream gauge follows.
  broker_.kill();
  EXPECT_TRUE(eventually(
      [&] { return sample(metrics(), R"(wsbridge_upstream_up{upstream="local"})") == 0; }, 10s,
      50ms));
}

TEST(LogFormatTest, JsonLogsWithAnAccessLinePerConnection) {
  WsbridgeInstance server(
      "[server]\nlog_format = \"json\"\n[[listeners]]\nport = ${PORT}\n"
      "[[routes]]\npath = \"/echo\"\nadapter = \"echo\"\n");
  {
    WsClient ws = WsClient::connect(server.client("/echo"));
    ws.send_text("x");
    ws.read_message();
    ws.send_close(1000);
    ws.wait_close();
  }
  ASSERT_TRUE(server.process->wait_for_output("\"event\":\"close\"", 5s))
      << server.process->output();
  std::istringstream lines(server.process->output());
  std::string line;
  int parsed = 0;
  json close;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    json j = json::parse(line);  // every line is one JSON object
    ++parsed;
    EXPECT_TRUE(j.contains("ts") && j.contains("level") && j.contains("msg")) << line;
    if (j.value("event", "") == "close") close = j;
  }
  EXPECT_GE(parsed, 3);
  EXPECT_EQ(close["path"], "/echo");
  EXPECT_EQ(close["code"], 1000);
  EXPECT_EQ(close["by"], "peer");
  EXPECT_EQ(close["messages_in"], 1);
  EXPECT_EQ(close["messages_out"], 1);
  EXPECT_EQ(close["remote"], "127.0.0.1");
  EXPECT_TRUE(close["duration_s"].is_number());
}

// The unit is generated at install time: systemd-analyze verify runs on the installed one, for
// each prefix, in tests/regression/operations_regression_test.cpp (PackagingRegressionTest).

TEST(PackagingTest, InstalledTreeRuns) {
  const std::string destdir = temp_dir() + "/destdir";
  ChildProcess install = ChildProcess::spawn({"/usr/bin/cmake", "--install", WSBRIDGE_BUILD_DIR},
                                             {"DESTDIR=" + destdir});
  ASSERT_EQ(install.wait_exit(120s), 0) << install.output();
  const std::string prefix = destdir + WSBRIDGE_INSTALL_PREFIX;
  const std::string binary = prefix + "/bin/wsbridge";
  const std::string config = destdir + WSBRIDGE_INSTALL_SYSCONFDIR + "/wsbridge/wsbridge.toml";
  const std::string web = prefix + "/share/wsbridge/web";
  ASSERT_TRUE(std::filesystem::exists(binary));
  ASSERT_TRUE(std::filesystem::exists(config));
  ASSERT_TRUE(std::filesystem::exists(web + "/index.html"));
  ASSERT_TRUE(std::filesystem::exists(prefix + "/lib/systemd/system/wsbridge.service"));
  ChildProcess version = ChildProcess::spawn({binary, "--version"});
  EXPECT_EQ(version.wait_exit(10s), 0);
  // The installed config, moved under DESTDIR and onto a free port, serves the installed page.
  std::ifstream in(config);
  std::stringstream text;
  text << in.rdbuf();
  std::string moved = std::regex_replace(text.str(), std::regex("static_dir = \"[^\"]*\""),
                                         "static_dir = \"" + web + "\"");
  moved = std::regex_replace(moved, std::regex("port = 8080"), "port = ${PORT}");
  WsbridgeInstance::replace_all(moved, "tcp://127.0.0.1:1883", "tcp://127.0.0.1:9");  // no broker
  std::string installed_binary_config = moved;
  // Run the installed binary (not the build tree's) on it.
  const uint16_t port = free_tcp_port();
  WsbridgeInstance::replace_all(installed_binary_config, "${PORT}", std::to_string(port));
  const std::string path = write_temp_file("installed.toml", installed_binary_config);
  ChildProcess check = ChildProcess::spawn({binary, "--check-config", path});
  ASSERT_EQ(check.wait_exit(10s), 0) << check.output();
  ChildProcess run = ChildProcess::spawn({binary, "--config", path});
  ASSERT_TRUE(wait_port_open("127.0.0.1", port, 10s)) << run.output();
  HttpResponse page = http_get("127.0.0.1", port, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("wsbridge"), std::string::npos);
  EXPECT_EQ(http_get("127.0.0.1", port, "/healthz").status, 200);
  run.signal(SIGTERM);
  EXPECT_EQ(run.wait_exit(10s), 0);
}

}  // namespace
}  // namespace wsbridge::testing
