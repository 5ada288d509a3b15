// The http adapter against a real HTTP backend (tests/support/http_backend.py) and a real
// wsbridge process: message and rpc modes, keep-alive reuse, backend failures and the push API.
// The hooks, TLS backends, flow control and draining at shutdown are in http_lifecycle_test.cpp.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "integration/http_test_config.hpp"
#include "integration/wsbridge_instance.hpp"
#include "support/http_backend.hpp"
#include "support/jwt_sign.hpp"

namespace wsbridge::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

std::string base_config() {
  return R"(
[jwt.main]
secret_env = "WSBRIDGE_TEST_JWT_SECRET"
[[listeners]]
port = ${PORT}
[admin]
port = ${PORT2}
token_env = "WSBRIDGE_TEST_PUSH_TOKEN"

[[routes]]
path = "/msg"
adapter = "http"
backend = "${BACKEND}/echo"
timeout = "1500ms"
headers = { X-Api-Key = "static-key" }

[[routes]]
path = "/msg-auth"
adapter = "http"
backend = "${BACKEND}/echo"
[routes.auth]
jwt = "main"

[[routes]]
path = "/to-status"
adapter = "http"
backend = "${BACKEND}/status/503"

[[routes]]
path = "/to-hang"
adapter = "http"
backend = "${BACKEND}/hang"
timeout = "300ms"

[[routes]]
path = "/to-die"
adapter = "http"
backend = "${BACKEND}/die"

[[routes]]
path = "/to-big"
adapter = "http"
backend = "${BACKEND}/big/300000"
max_response_size = "64KiB"

[[routes]]
path = "/nobody-home"
adapter = "http"
backend = "http://127.0.0.1:1/"

[[routes]]
path = "/rpc"
adapter = "http"
mode = "rpc"
backend = "${BACKEND}"
methods = ["GET", "POST", "DELETE"]
paths = ["/json", "/echo", "/status/", "/slow/", "/chunked/", "/drop-first/"]
allow_client_headers = ["X-HTTP-Method-Override"]
max_in_flight = 4
timeout = "3s"

[[routes]]
path = "/rpc-serial"
adapter = "http"
mode = "rpc"
backend = "${BACKEND}"
max_in_flight = 1
paths = ["/slow/", "/json"]
)";
}

class HttpAdapterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("WSBRIDGE_TEST_JWT_SECRET", kSecret.c_str(), 1);
    setenv("WSBRIDGE_TEST_PUSH_TOKEN", kAdminToken.c_str(), 1);
    server_.emplace(with_backend(base_config(), backend_));
  }

  WsClient connect(const std::string& path,
                   std::vector<std::pair<std::string, std::string>> headers = {}) {
    ClientOptions opts = server_->client(path);
    opts.extra_headers = std::move(headers);
    return WsClient::connect(opts);
  }

  static json read_json(WsClient& ws, std::chrono::milliseconds timeout = 5s) {
    auto m = ws.read_message(timeout);
    EXPECT_EQ(m.opcode, Opcode::kText) << m.data;
    return json::parse(m.data);
  }

  HttpResult admin(const std::string& method, const std::string& path, const std::string& body = {},
                   const std::string& token = kAdminToken) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    return http_request(server_->port2, method, path, body, headers);
  }

  HttpBackend backend_;
  std::optional<WsbridgeInstance> server_;
};

TEST_F(HttpAdapterTest, MessageModePostsEachMessageWithItsTypeAndIdentityHeaders) {
  WsClient ws = connect("/msg");
  ws.send_text(R"({"temp":21.5})");
  auto a = ws.read_message();
  EXPECT_EQ(a.opcode, Opcode::kText);
  EXPECT_EQ(a.data, R"({"temp":21.5})");
  ws.send_text("plain words");
  auto b = ws.read_message();
  EXPECT_EQ(b.opcode, Opcode::kText);
  EXPECT_EQ(b.data, "plain words");
  const std::string bytes("\x00\xff\x10", 3);
  ws.send_binary(bytes);
  auto c = ws.read_message();
  EXPECT_EQ(c.opcode, Opcode::kBinary);
  EXPECT_EQ(c.data, bytes);

  json requests = backend_.requests();
  ASSERT_EQ(requests.size(), 3u);
  const char* types[] = {"application/json", "text/plain; charset=utf-8",
                         "application/octet-stream"};
  std::set<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    const json& r = requests[i];
    EXPECT_EQ(r["method"], "POST");
    EXPECT_EQ(r["path"], "/echo");
    const json& h = r["headers"];
    EXPECT_EQ(h["content-type"], types[i]);
    EXPECT_EQ(h["x-forwarded-for"], "127.0.0.1");
    EXPECT_EQ(h["x-api-key"], "static-key");
    EXPECT_EQ(h["x-wsbridge-route"], "/msg");
    EXPECT_FALSE(h.contains("x-wsbridge-user"));  // anonymous
    EXPECT_TRUE(h.contains("x-wsbridge-connection"));
    ids.insert(h["x-request-id"].get<std::string>());
  }
  EXPECT_EQ(ids.size(), 3u) << "every request has its own X-Request-Id";
  // One client, sequential messages: one keep-alive connection to the backend.
  EXPECT_EQ(backend_.stats()["connections"], 1);

  // JSON with a NUL byte and junk behind it, or a BOM before it, is not JSON to a backend's
  // parser: labelled as text (nlohmann's accept() ends the text at the NUL, skips the BOM).
  for (const std::string& text :
       {std::string("{\"a\":1}\0junk", 12), std::string("\xEF\xBB\xBF{\"a\":1}")}) {
    ws.send_text(text);
    EXPECT_EQ(ws.read_message().data, text);
  }
  requests = backend_.requests();
  ASSERT_EQ(requests.size(), 5u);
  EXPECT_EQ(requests[3]["headers"]["content-type"], "text/plain; charset=utf-8");
  EXPECT_EQ(requests[4]["headers"]["content-type"], "text/plain; charset=utf-8");
}

TEST_F(HttpAdapterTest, MessageModeKeepsOrderAndReusesConnections) {
  WsClient ws = connect("/msg");
  for (int i = 0; i < 40; ++i) ws.send_text("m" + std::to_string(i));
  for (int i = 0; i < 40; ++i) EXPECT_EQ(ws.read_message().data, "m" + std::to_string(i));
  json requests = backend_.requests();
  ASSERT_EQ(requests.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(requests[i]["body"], "m" + std::to_string(i));
  EXPECT_EQ(backend_.stats()["connections"], 1) << "40 requests over one kept-alive connection";
}

TEST_F(HttpAdapterTest, AuthenticatedUserIsNamedToTheBackend) {
  const std::string t = sign_hs256({{"sub", "alice"}, {"exp", unix_now() + 600}}, kSecret);
  WsClient ws = connect("/msg-auth", {{"Authorization", "Bearer " + t}});
  ws.send_text("hi");
  EXPECT_EQ(ws.read_message().data, "hi");
  EXPECT_EQ(backend_.requests()[0]["headers"]["x-wsbridge-user"], "alice");
}

// A backend may close an idle keep-alive connection just as wsbridge reuses it: an idempotent
// request then goes once more on a new connection. That retry used to find the request's bytes
// already freed, sent nothing, and the request waited for the route's whole timeout.
TEST_F(HttpAdapterTest, AnIdempotentRequestIsSentAgainWhenItsReusedConnectionCloses) {
  WsClient ws = connect("/rpc");
  ws.send_text(R"({"type":"request","id":"warm","method":"GET","path":"/json/warm"})");
  ASSERT_EQ(read_json(ws)["status"], 200);  // leaves a kept-alive connection to reuse
  ws.send_text(R"({"type":"request","id":"get","method":"GET","path":"/drop-first/get"})");
  json r = read_json(ws);
  EXPECT_EQ(r["type"], "response") << r.dump();
  EXPECT_EQ(r["status"], 200) << r.dump();
  // A POST may have been acted on before the close: never sent twice, and told at once.
  ws.send_text(R"({"type":"request","id":"post","method":"POST","path":"/drop-first/post"})");
  r = read_json(ws);
  EXPECT_EQ(r["type"], "error") << r.dump();
  EXPECT_EQ(r["code"], "bad_response") << r.dump();
  // Nor a GET that asks the backend to take it as a POST.
  ws.send_text(R"({"type":"request","id":"ovr","method":"GET","path":"/drop-first/ovr",)"
               R"("headers":{"X-HTTP-Method-Override":"POST"}})");
  r = read_json(ws);
  EXPECT_EQ(r["code"], "bad_response") << r.dump();
  int gets = 0;
  int posts = 0;
  int overridden = 0;
  for (const json& request : backend_.requests()) {
    gets += request["path"] == "/drop-first/get" ? 1 : 0;
    posts += request["path"] == "/drop-first/post" ? 1 : 0;
    overridden += request["path"] == "/drop-first/ovr" ? 1 : 0;
  }
  EXPECT_EQ(gets, 2);
  EXPECT_EQ(posts, 1);
  EXPECT_EQ(overridden, 1);
}

TEST_F(HttpAdapterTest, BackendFailuresBecomeErrorFramesAndTheSessionLives) {
  WsClient status = connect("/to-status");
  status.send_text("x");
  json e = read_json(status);
  EXPECT_EQ(e["type"], "error");
  EXPECT_EQ(e["code"], "upstream_status");
  EXPECT_EQ(e["status"], 503);

  WsClient hang = connect("/to-hang");
  hang.send_text("x");
  e = read_json(hang);
  EXPECT_EQ(e["code"], "timeout");

  WsClient refused = connect("/nobody-home");
  refused.send_text("x");
  e = read_json(refused);
  EXPECT_EQ(e["code"], "upstream_unavailable");

  WsClient die = connect("/to-die");
  die.send_text("x");
  e = read_json(die);
  EXPECT_EQ(e["code"], "bad_response") << e.dump();

  WsClient big = connect("/to-big");
  big.send_text("x");
  e = read_json(big);
  EXPECT_EQ(e["code"], "response_too_large") << e.dump();

  // Every session is still open and answers again.
  for (WsClient* ws : {&status, &hang, &refused, &die, &big}) {
    ws->send_text("again");
    EXPECT_EQ(read_json(*ws)["type"], "error");
  }
}

TEST_F(HttpAdapterTest, RpcRequestsBecomeRealRequestsAndResponses) {
  WsClient ws = connect("/rpc");
  ws.send_text(R"({"type":"request","id":1,"method":"GET","path":"/json/orders/42?x=1"})");
  json r = read_json(ws);
  EXPECT_EQ(r["type"], "response");
  EXPECT_EQ(r["id"], 1);
  EXPECT_EQ(r["status"], 200);
  EXPECT_EQ(r["headers"]["content-type"], "application/json");
  EXPECT_EQ(r["body"]["path"], "/json/orders/42?x=1");

  ws.send_text(
      R"({"type":"request","id":"p","method":"post","path":"/echo/x","headers":{"X-Test":"t1"},"body":{"k":[1,2]}})");
  r = read_json(ws);
  EXPECT_EQ(r["id"], "p");
  EXPECT_EQ(r["status"], 200);
  EXPECT_EQ(r["body"], json({{"k", {1, 2}}}));
  EXPECT_EQ(r["headers"]["x-echo-method"], "POST");
  EXPECT_EQ(r["headers"]["x-test-echo"], "t1");

  ws.send_text(R"({"type":"request","id":3,"method":"GET","path":"/status/404"})");
  r = read_json(ws);
  EXPECT_EQ(r["type"], "response");
  EXPECT_EQ(r["status"], 404);

  ws.send_text(R"({"type":"request","id":4,"method":"GET","path":"/chunked/3"})");
  r = read_json(ws);
  EXPECT_EQ(r["body"], "chunk0\nchunk1\nchunk2\n");

  const json recorded = backend_.requests();
  ASSERT_GE(recorded.size(), 2u);
  EXPECT_EQ(recorded[1]["headers"]["content-type"], "application/json");
  EXPECT_EQ(recorded[1]["body"], R"({"k":[1,2]})");
}

TEST_F(HttpAdapterTest, RpcRefusesWhatTheRouteDoesNotAllow) {
  WsClient ws = connect("/rpc");
  struct Case {
    const char* frame;
    const char* code;
  } cases[] = {
      {R"({"type":"request","id":1,"method":"PUT","path":"/echo"})", "forbidden"},
      {R"({"type":"request","id":2,"method":"GET","path":"/admin"})", "forbidden"},
      {R"({"type":"request","id":3,"method":"GET","path":"/json-admin"})", "forbidden"},
      {R"({"type":"request","id":4,"method":"GET","path":"/json/../admin"})", "bad_request"},
      {R"({"type":"request","id":5,"method":"GET","path":"/json/%2e%2e/admin"})", "bad_request"},
      {R"({"type":"request","id":6,"method":"GET","path":"/echo","headers":{"X-A":"1\r\nX-B: 2"}})",
       "bad_request"},
      {R"({"type":"request","id":7,"method":"GET","path":"/echo","headers":{"Host":"evil"}})",
       "forbidden"},
      {R"({"type":"request","id":8,"method":"GET","path":"/echo","headers":{"X-Wsbridge-User":"root"}})",
       "forbidden"},
      {R"({"type":"request","id":9,"method":"GET","path":"/echo HTTP/1.1\r\nX: y"})",
       "bad_request"},
      {R"({"type":"request","method":"GET","path":"/echo"})", "bad_request"},
      {R"({"type":"request","id":11,"path":"/echo"})", "bad_request"},
      {R"(not json)", "bad_request"},
  };
  for (const auto& c : cases) {
    ws.send_text(c.frame);
    json e = read_json(ws);
    EXPECT_EQ(e["type"], "error") << c.frame;
    EXPECT_EQ(e["code"], c.code) << c.frame << " -> " << e.dump();
  }
  EXPECT_EQ(backend_.stats()["requests"], 0) << "nothing refused reached the backend";
}

TEST_F(HttpAdapterTest, RpcAnswersAsRequestsCompleteUpToTheLimitPerConnection) {
  WsClient ws = connect("/rpc");
  ws.send_text(R"({"type":"request","id":"slow","method":"GET","path":"/slow/700"})");
  ws.send_text(R"({"type":"request","id":"fast","method":"GET","path":"/json"})");
  EXPECT_EQ(read_json(ws)["id"], "fast") << "answered as completed, not in order";
  EXPECT_EQ(read_json(ws)["id"], "slow");

  // max_in_flight = 1: the second request waits for the first.
  WsClient serial = connect("/rpc-serial");
  serial.send_text(R"({"type":"request","id":"slow","method":"GET","path":"/slow/400"})");
  serial.send_text(R"({"type":"request","id":"fast","method":"GET","path":"/json"})");
  EXPECT_EQ(read_json(serial)["id"], "slow");
  EXPECT_EQ(read_json(serial)["id"], "fast");
}

TEST_F(HttpAdapterTest, BackendKilledAndRestartedWithoutKillingSessions) {
  WsClient ws = connect("/msg");
  ws.send_text("before");
  EXPECT_EQ(ws.read_message().data, "before");
  backend_.kill();
  ws.send_text("during");
  json e = read_json(ws);
  EXPECT_TRUE(e["code"] == "upstream_unavailable" || e["code"] == "bad_response") << e.dump();
  backend_.start();
  ws.send_text("after");
  EXPECT_EQ(ws.read_message().data, "after");
}

TEST_F(HttpAdapterTest, PushApiDeliversListsAndCloses) {
  const std::string t = sign_hs256({{"sub", "bob"}, {"exp", unix_now() + 600}}, kSecret);
  WsClient a = connect("/msg");
  WsClient b = connect("/msg-auth", {{"Authorization", "Bearer " + t}});
  b.send_text("hello");  // counters move
  EXPECT_EQ(b.read_message().data, "hello");

  // The echo's shard counts it right after the socket took it, and the client may read it and
  // ask shard 0 before that count lands: wait (bounded) until it has.
  json conns;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    HttpResult list = admin("GET", "/api/v1/connections");
    ASSERT_EQ(list.status, 200) << list.body;
    conns = json::parse(list.body)["connections"];
    ASSERT_EQ(conns.size(), 2u);
    bool counted = false;
    for (const auto& c : conns) counted |= c["route"] != "/msg" && c["messages_out"] == 1;
    if (counted || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(10ms);
  }
  std::string a_id;  // "<number>@<instance_id>"
  std::string b_id;
  for (const auto& c : conns) {
    (c["route"] == "/msg" ? a_id : b_id) = c["id"].get<std::string>();
    EXPECT_EQ(c["id"].get<std::string>().substr(c["id"].get<std::string>().find('@') + 1),
              c["instance"]);
    EXPECT_EQ(c["remote_address"], "127.0.0.1");
    EXPECT_GT(c["since"].get<double>(), 1.7e9);
  }
  for (const auto& c : conns) {
    if (c["id"] == b_id) {
      EXPECT_EQ(c["user"], "bob");
      EXPECT_EQ(c["messages_in"], 1);
      EXPECT_EQ(c["messages_out"], 1);
    }
  }

  HttpResult r = admin("POST", "/api/v1/push", json{{"connection", a_id}, {"data", "to a"}}.dump());
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["delivered"], 1);
  EXPECT_EQ(a.read_message().data, "to a");

  r = admin("POST", "/api/v1/push", json{{"user", "bob"}, {"data", {{"alert", 1}}}}.dump());
  EXPECT_EQ(json::parse(r.body)["delivered"], 1);
  EXPECT_EQ(json::parse(b.read_message().data), json({{"alert", 1}}));

  r = admin("POST", "/api/v1/push",
            json{{"route", "/msg"}, {"data", "AAH/"}, {"encoding", "base64"}}.dump());
  EXPECT_EQ(json::parse(r.body)["delivered"], 1);
  auto bin = a.read_message();
  EXPECT_EQ(bin.opcode, Opcode::kBinary);
  EXPECT_EQ(bin.data, std::string("\x00\x01\xff", 3));

  // Errors: bad JSON, bad targets, unknown connection, wrong method, bad token.
  EXPECT_EQ(admin("POST", "/api/v1/push", "{not json").status, 400);
  EXPECT_EQ(admin("POST", "/api/v1/push", R"({"data":"x"})").status, 400);
  EXPECT_EQ(admin("POST", "/api/v1/push", R"({"user":"bob","route":"/msg","data":1})").status, 400);
  EXPECT_EQ(admin("POST", "/api/v1/push", R"({"connection":"one","data":1})").status, 400);
  EXPECT_EQ(admin("POST", "/api/v1/push", R"({"connection":999999,"data":1})").status, 404);
  EXPECT_EQ(admin("GET", "/api/v1/push").status, 405);
  EXPECT_EQ(admin("GET", "/api/v1/connections", "", "wrong-token").status, 401);
  EXPECT_EQ(admin("POST", "/api/v1/push", R"({"route":"/msg","data":1})", "").status, 401);
  // The scheme's name in any case (RFC 9110 11.1), as on the public listeners.
  EXPECT_EQ(http_request(server_->port2, "GET", "/api/v1/connections", "",
                         {{"Authorization", "bearer " + std::string(kAdminToken)}})
                .status,
            200);
  EXPECT_EQ(admin("DELETE", "/api/v1/connections/abc").status, 400);
  EXPECT_EQ(admin("DELETE", "/api/v1/connections/999999").status, 404);
  HttpResult big = admin("POST", "/api/v1/push",
                         json{{"route", "/msg"}, {"data", std::string(1100000, 'x')}}.dump());
  EXPECT_EQ(big.status, 413);

  r = admin("DELETE", "/api/v1/connections/" + a_id + "?code=4001&reason=bye");
  EXPECT_EQ(r.status, 200) << r.body;
  auto closed = a.read_message();
  EXPECT_EQ(closed.opcode, Opcode::kClose);
  EXPECT_EQ(closed.close_code(), 4001);
  EXPECT_EQ(closed.close_reason(), "bye");
  // Not on the public listener.
  EXPECT_EQ(http_request(server_->port, "GET", "/api/v1/connections").status, 404);
}

}  // namespace
}  // namespace wsbridge::testing
