// Regression tests (#13) for the http area: each one fails without the fix it names.
//   #13.3  rpc headers are checked by their canonical name ("X_Wsbridge_User" is X-Wsbridge-User
//          to a WSGI backend); headers backends trust are refused unless the route allows them;
//          the same for the route's static headers and the on_connect hook's header copy.
//   #13.4  rpc paths with path parameters, encoded separators, double encoding and the like are
//          refused before they reach the backend.
//   #13.17 an http route's ca_file that is not PEM fails --check-config at its position.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "config/server_config.hpp"
#include "integration/wsbridge_instance.hpp"
#include "support/http_backend.hpp"
#include "wsbridge/adapter_registry.hpp"

namespace wsbridge::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

std::string with_backend(std::string config, const HttpBackend& backend) {
  WsbridgeInstance::replace_all(config, "${BACKEND}", backend.base_url());
  return config;
}

json read_json(WsClient& ws) {
  auto m = ws.read_message(5s);
  EXPECT_EQ(m.opcode, Opcode::kText) << m.data;
  return json::parse(m.data);
}

json request_frame(int id, const std::string& path, const json& headers = json::object()) {
  return {{"type", "request"}, {"id", id}, {"method", "GET"}, {"path", path}, {"headers", headers}};
}

class HttpRpcRegressionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.emplace(with_backend(R"(
[[listeners]]
port = ${PORT}

[[routes]]
path = "/rpc"
adapter = "http"
mode = "rpc"
backend = "${BACKEND}"
paths = ["/json", "/echo"]
headers = { X-Api-Key = "static-key" }

[[routes]]
path = "/rpc-proto"
adapter = "http"
mode = "rpc"
backend = "${BACKEND}"
paths = ["/echo"]
allow_client_headers = ["X-Forwarded-Proto"]

[[routes]]
path = "/hooked"
adapter = "http"
backend = "${BACKEND}/echo"
on_connect = "${BACKEND}/hook/connect"
)",
                                 backend_));
  }

  WsClient connect(const std::string& path,
                   std::vector<std::pair<std::string, std::string>> headers = {}) {
    ClientOptions opts = server_->client(path);
    opts.extra_headers = std::move(headers);
    return WsClient::connect(opts);
  }

  HttpBackend backend_;
  std::optional<WsbridgeInstance> server_;
};

// JSON nested half a million levels deep in a request's body killed the process (its copy and
// dump recursed once per level and overflowed the service thread's stack). Now an error frame,
// and the connection and the process go on.
TEST_F(HttpRpcRegressionTest, JsonNestedTooDeepIsRefusedNotACrash) {
  WsClient ws = connect("/rpc");
  const std::string deep = std::string(500'000, '[') + std::string(500'000, ']');
  ws.send_text(R"({"type":"request","id":1,"method":"POST","path":"/echo","body":)" + deep + "}");
  const json e = read_json(ws);
  EXPECT_EQ(e["type"], "error");
  EXPECT_EQ(e["code"], "bad_request");
  EXPECT_EQ(e["message"], "the JSON nests deeper than 128 levels");
  ws.send_text(request_frame(2, "/json/after").dump());
  const json r = read_json(ws);
  EXPECT_EQ(r["type"], "response") << r.dump();
  EXPECT_EQ(r["id"], 2);
  EXPECT_TRUE(server_->process->running());
}

// #13.3: identity, hop-by-hop and trusted headers in any spelling never reach the backend.
TEST_F(HttpRpcRegressionTest, ForgedHeadersInAnySpellingAreRefused) {
  WsClient ws = connect("/rpc");
  const std::vector<std::string> forged = {
      "X_Wsbridge_User", "x_wsbridge_user", "X.Wsbridge.User", "X-WSBRIDGE-USER",
      "X_Wsbridge_Route", "X_Forwarded_For", "x-forwarded-for", "X_Request_Id", "Content_Length",
      "Transfer_Encoding", "Proxy_Authorization",
      // Trusted by backends: refused unless the route allows them.
      "X-HTTP-Method-Override", "X_HTTP_Method_Override", "X-Method-Override", "X-HTTP-Method",
      "X-Original-URL", "X_Original_Url", "X-Rewrite-URL", "X-Real-IP", "X_Real_IP",
      "True-Client-IP", "X-Client-IP", "X-Forwarded-Host", "X_Forwarded_Proto", "Forwarded",
      "X-Cluster-Client-IP", "CF-Connecting-IP", "X-Remote-User", "X-Amzn-Oidc-Identity"};
  int id = 0;
  for (const auto& name : forged) {
    ws.send_text(request_frame(++id, "/echo", {{name, "admin"}}).dump());
    const json e = read_json(ws);
    EXPECT_EQ(e["type"], "error") << name << " -> " << e.dump();
    EXPECT_EQ(e["code"], "forbidden") << name << " -> " << e.dump();
    EXPECT_EQ(e["id"], id);
    EXPECT_NE(e["message"].get<std::string>().find(name), std::string::npos) << e.dump();
  }
  // Two spellings of one header in one request: ambiguous to the backend, refused.
  ws.send_text(request_frame(++id, "/echo", {{"X-Trace", "a"}, {"X_Trace", "b"}}).dump());
  EXPECT_EQ(read_json(ws)["code"], "bad_request");
  EXPECT_EQ(backend_.stats()["requests"], 0) << "a refused request reached the backend";

  // Allowed: an ordinary header, and a client's spelling of the route's static header is dropped
  // (the route's value wins, as for the same spelling).
  ws.send_text(request_frame(++id, "/echo", {{"X-Trace", "t1"}, {"X_Api_Key", "forged"}}).dump());
  const json r = read_json(ws);
  EXPECT_EQ(r["type"], "response") << r.dump();
  EXPECT_EQ(r["status"], 200);
  const json recorded = backend_.requests();
  ASSERT_EQ(recorded.size(), 1u);
  std::set<std::string> names;
  for (const auto& h : recorded[0]["header_list"]) names.insert(h[0].get<std::string>());
  EXPECT_EQ(names.count("X_Api_Key"), 0u) << recorded[0].dump();
  EXPECT_EQ(recorded[0]["headers"]["x-api-key"], "static-key");
  EXPECT_EQ(recorded[0]["headers"]["x-trace"], "t1");
  EXPECT_FALSE(recorded[0]["headers"].contains("x-wsbridge-user"));
  EXPECT_EQ(recorded[0]["headers"]["x-forwarded-for"], "127.0.0.1");
  for (const auto& name : names) {
    EXPECT_EQ(name.find('_'), std::string::npos) << "the backend got " << name;
  }
}

// #13.3: a route may let clients set a trusted header; reserved ones stay refused there.
TEST_F(HttpRpcRegressionTest, ARouteMayAllowATrustedHeader) {
  WsClient ws = connect("/rpc-proto");
  ws.send_text(request_frame(1, "/echo", {{"X-Forwarded-Proto", "https"}}).dump());
  EXPECT_EQ(read_json(ws)["status"], 200);
  ws.send_text(request_frame(2, "/echo", {{"X-Real-IP", "10.9.9.9"}}).dump());
  EXPECT_EQ(read_json(ws)["code"], "forbidden");
  ws.send_text(request_frame(3, "/echo", {{"X_Forwarded_For", "10.9.9.9"}}).dump());
  EXPECT_EQ(read_json(ws)["code"], "forbidden");
  const json recorded = backend_.requests();
  ASSERT_EQ(recorded.size(), 1u);
  EXPECT_EQ(recorded[0]["headers"]["x-forwarded-proto"], "https");
}

// #13.3 twin: the on_connect hook's copy of the handshake headers shows no disguised identity.
TEST_F(HttpRpcRegressionTest, ConnectHookDoesNotSeeDisguisedIdentityHeaders) {
  {
    WsClient ws = connect("/hooked", {{"X_Wsbridge_User", "admin"},
                                      {"X-Wsbridge-User", "admin"},
                                      {"X_Forwarded_For", "10.9.9.9"},
                                      {"X_Real_IP", "10.9.9.9"},
                                      {"X-Custom", "kept"}});
    ws.send_text("hi");
    EXPECT_EQ(ws.read_message().data, "hi");
  }
  json hook;
  for (const auto& r : backend_.requests()) {
    if (r["path"] == "/hook/connect") hook = json::parse(r["body"].get<std::string>());
  }
  ASSERT_TRUE(hook.is_object());
  const json& headers = hook["headers"];
  EXPECT_EQ(headers["x-custom"], "kept") << headers.dump();
  for (const char* gone : {"x_wsbridge_user", "x-wsbridge-user", "x_forwarded_for", "x_real_ip"}) {
    EXPECT_FALSE(headers.contains(gone)) << gone << " in " << headers.dump();
  }
}

// #13.4: path parameters, encoded separators, double encoding, empty and dot segments.
TEST_F(HttpRpcRegressionTest, PathTricksNeverReachTheBackend) {
  WsClient ws = connect("/rpc");
  const std::vector<std::string> bad = {"/json/..;/admin",
                                        "/json/%2e%2e;/admin",
                                        "/json/..%3b/admin",
                                        "/json/..%3B/admin",
                                        "/json;x=1/../admin",
                                        "/json/%252e%252e/admin",
                                        "/json/%25252e%25252e/x",
                                        "/json/%%32%65%%32%65/x",
                                        "/json/%2e%2e%2fadmin",
                                        "/json/..%2fadmin",
                                        "/json/a%2fb",
                                        "/json/a%5cb",
                                        "/json//admin",
                                        "/json/%2f/admin",
                                        "/json/%00",
                                        "/json/%0d%0aX:%20y",
                                        "/json/...",
                                        "/json/%2e",
                                        "/json/%c0%ae%c0%ae/x",
                                        "/json/\xef\xbc\x8e\xef\xbc\x8e/x",
                                        "/json/%ef%bc%8e%ef%bc%8e/x",
                                        "/json/%zz",
                                        "/json/%2",
                                        "/json/a\\b",
                                        "/json/%255c"};
  int id = 0;
  for (const auto& path : bad) {
    ws.send_text(request_frame(++id, path).dump(-1, ' ', false, json::error_handler_t::replace));
    const json e = read_json(ws);
    EXPECT_EQ(e["type"], "error") << path << " -> " << e.dump();
    EXPECT_EQ(e["code"], "bad_request") << path << " -> " << e.dump();
  }
  EXPECT_EQ(backend_.stats()["requests"], 0) << "a refused path reached the backend";

  // Ordinary encodings still work.
  for (const std::string path : {"/json/a%20b", "/json/caf%C3%A9?x=..;%2f", "/json/v1.2/x"}) {
    ws.send_text(request_frame(++id, path).dump());
    const json r = read_json(ws);
    EXPECT_EQ(r["status"], 200) << path << " -> " << r.dump();
  }
  EXPECT_EQ(backend_.stats()["requests"], 3);
}

ServerConfig load(const std::string& text) {
  static AdapterRegistry registry = [] {
    AdapterRegistry r;
    register_builtin_adapters(r);
    return r;
  }();
  return parse_config(text, "test.toml", registry);
}

std::string config_error(const std::string& text) {
  try {
    load(text);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(accepted)";
}

// #13.3 twin: the route's static headers and allow_client_headers are checked at load.
TEST(HttpConfigRegressionTest, StaticHeadersAndAllowedHeadersAreCheckedWithPositions) {
  const std::string head =
      "[[listeners]]\nport = 1\n[[routes]]\npath = \"/h\"\nadapter = \"http\"\n"
      "backend = \"http://127.0.0.1:9/\"\n";
  EXPECT_EQ(config_error(head + "headers = { X-Forwarded-Proto = \"https\" }\n"), "(accepted)");
  for (const char* name : {"X_Wsbridge_User", "x-wsbridge-route", "X_Forwarded_For", "Host",
                           "content_length", "X_Request_Id"}) {
    const std::string e = config_error(head + "headers = { " + name + " = \"v\" }\n");
    EXPECT_EQ(e.rfind("test.toml:7:", 0), 0u) << name << " -> " << e;
    EXPECT_NE(e.find(name), std::string::npos) << e;
  }
  EXPECT_NE(config_error(head + "headers = { X-Key = \"a\", X_Key = \"b\" }\n").find("twice"),
            std::string::npos);
  const std::string rpc = head + "mode = \"rpc\"\n";
  EXPECT_EQ(config_error(rpc + "allow_client_headers = [\"X-Forwarded-Proto\"]\n"), "(accepted)");
  for (const char* bad : {"X-Wsbridge-User", "X_Forwarded_For", "X-Trace"}) {
    const std::string e =
        config_error(rpc + "allow_client_headers = [\"" + std::string(bad) + "\"]\n");
    EXPECT_EQ(e.rfind("test.toml:8:", 0), 0u) << bad << " -> " << e;
  }
  EXPECT_NE(config_error(head + "allow_client_headers = [\"Forwarded\"]\n").find("rpc routes"),
            std::string::npos);
  // #13.4 twin: a prefix must be a path the check accepts.
  for (const char* bad : {"/a;b", "/a//b", "/a/%2e%2e", "/a%2fb", "/a/."}) {
    const std::string e = config_error(rpc + "paths = [\"" + std::string(bad) + "\"]\n");
    EXPECT_EQ(e.rfind("test.toml:8:", 0), 0u) << bad << " -> " << e;
  }
}

struct Outcome {
  int status;
  std::string output;
};

Outcome check_config(const std::string& path) {
  ChildProcess p = ChildProcess::spawn({WSBRIDGE_BINARY, "--check-config", path});
  auto status = p.wait_exit(10s);
  EXPECT_TRUE(status.has_value()) << "wsbridge did not exit";
  return Outcome{status.value_or(-1), p.output()};
}

// #13.17: a ca_file that is not a PEM bundle fails --check-config at the ca_file's position,
// for http:// backends too (a hook may be https), and before any connection needs it.
TEST(HttpConfigRegressionTest, CheckConfigRefusesACaFileThatIsNotPem) {
  const std::string not_pem = write_temp_file("not-a-ca.pem", "this is not a certificate\n");
  const std::string der = write_temp_file("ca.der", std::string("\x30\x82\x01\x0a\x02\x01", 6));
  const std::string broken = write_temp_file(
      "broken.pem", "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n");
  for (const std::string& ca : {not_pem, der, broken}) {
    for (const char* url : {"http://127.0.0.1:9/", "https://127.0.0.1:9/"}) {
      const std::string config =
          write_temp_file("ca.toml",
                          "[[listeners]]\nport = 1\n[[routes]]\npath = \"/h\"\nadapter = \"http\"\n"
                          "backend = \"" +
                              std::string(url) + "\"\nca_file = \"" + ca + "\"\n");
      const Outcome r = check_config(config);
      EXPECT_EQ(r.status, 2) << url << " " << ca << ": " << r.output;
      EXPECT_NE(r.output.find(config + ":7:11: "), std::string::npos) << r.output;
      EXPECT_NE(r.output.find(ca), std::string::npos) << r.output;
    }
  }
  // A real PEM bundle passes (the test backend's throwaway CA).
  HttpBackend tls_backend(true);
  const std::string good = write_temp_file(
      "ca-ok.toml",
      "[[listeners]]\nport = 1\n[[routes]]\npath = \"/h\"\nadapter = \"http\"\n"
      "backend = \"" +
          tls_backend.base_url() + "/\"\nca_file = \"" + tls_backend.ca_file() + "\"\n");
  const Outcome ok = check_config(good);
  EXPECT_EQ(ok.status, 0) << ok.output;
}

}  // namespace
}  // namespace wsbridge::testing
