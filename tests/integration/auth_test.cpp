// Authentication, authorization and limits over real sockets against a real wsbridge: every
// credential source, JWT and API keys, Origin allowlists, the HTTP answers (401, 403, 503),
// mid-session expiry and refresh, rate limits, and credential ACLs reaching the mqtt adapter.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "support/jwt_sign.hpp"
#include "support/mosquitto.hpp"
#include "wsbridge_instance.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const std::string kSecret = "an-hmac-secret-of-at-least-32-bytes!";
const std::string kApiKey = "demo-api-key-0123456789";  // sha256 below

std::string config(const std::string& extra = "") {
  return R"(
[limits]
max_connections_per_ip = 40
[jwt.main]
secret_env = "WSBRIDGE_TEST_JWT_SECRET"
issuer = "tests"
audience = ["wsbridge"]
leeway = "0s"

[[api_keys]]
name = "dashboard"
sha256 = "1cad2248e8fecd0a5a5f693d28225ed3c8d0acf2fce3284800bf2c31a8a1947c"
claims = { role = "viewer" }

[[listeners]]
port = ${PORT}

[[routes]]
path = "/private"
adapter = "echo"
subprotocols = ["chat.v1"]
[routes.auth]
jwt = "main"
api_keys = true

[[routes]]
path = "/admins"
adapter = "echo"
[routes.auth]
jwt = "main"
allowed_users = ["alice"]

[[routes]]
path = "/operators"
adapter = "echo"
[routes.auth]
jwt = "main"
api_keys = true
required_claims = { role = ["operator", "admin"] }

[[routes]]
path = "/browser"
adapter = "echo"
[routes.auth]
allowed_origins = ["https://app.example.com", "https://*.example.org"]
allow_missing_origin = false

[[routes]]
path = "/open"
adapter = "echo"

[[routes]]
path = "/limited"
adapter = "echo"
rate = 5
burst = 5
)" + extra;
}

class AuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("WSBRIDGE_TEST_JWT_SECRET", kSecret.c_str(), 1);
    server_ = new WsbridgeInstance(config());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static std::string token(const std::string& sub, long long ttl = 300,
                           json extra = json::object()) {
    json claims = {{"sub", sub}, {"iss", "tests"}, {"aud", "wsbridge"}, {"exp", unix_now() + ttl}};
    claims.update(extra);
    return sign_hs256(claims, kSecret);
  }
  // The refusal of a handshake (or nullopt when it was accepted).
  static std::optional<HttpResponse> refusal(const ClientOptions& opts) {
    try {
      WsClient::connect(opts);
      return std::nullopt;
    } catch (const HandshakeError& e) {
      return e.response();
    }
  }
  static ClientOptions with_header(const std::string& path, const std::string& name,
                                   const std::string& value) {
    auto o = server_->client(path);
    o.extra_headers.emplace_back(name, value);
    return o;
  }
  static WsbridgeInstance* server_;
};
WsbridgeInstance* AuthTest::server_ = nullptr;

TEST_F(AuthTest, MissingCredentialsAre401WithAChallenge) {
  auto r = refusal(server_->client("/private"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->header("WWW-Authenticate"), "Bearer realm=\"wsbridge\"");
}

TEST_F(AuthTest, InvalidCredentialsAre401AndTheTokenIsNeverLogged) {
  const std::string forged = sign_hs256({{"sub", "mallory"}, {"exp", unix_now() + 60}},
                                        "wrong-secret-wrong-secret-wrong-secret");
  auto r = refusal(with_header("/private", "Authorization", "Bearer " + forged));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_FALSE(r->header("WWW-Authenticate"));
  const std::string expired = token("alice", -10);
  EXPECT_EQ(refusal(with_header("/private", "Authorization", "Bearer " + expired))->status, 401);
  const std::string none = b64url(R"({"alg":"none"})") + "." + b64url(R"({"sub":"alice"})") + ".";
  EXPECT_EQ(refusal(with_header("/private", "Authorization", "Bearer " + none))->status, 401);
  EXPECT_EQ(refusal(with_header("/private", "Authorization", "Bearer not-a-key"))->status, 401);
  ASSERT_TRUE(server_->process->wait_for_output("invalid token", 2s));
  const std::string log = server_->process->output();
  EXPECT_EQ(log.find(forged), std::string::npos);
  EXPECT_EQ(log.find(expired), std::string::npos);
  EXPECT_EQ(log.find("not-a-key"), std::string::npos);
}

TEST_F(AuthTest, TokenFromEverySource) {
  const std::string t = token("alice");
  WsClient header = WsClient::connect(with_header("/private", "Authorization", "Bearer " + t));
  header.send_text("h");
  EXPECT_EQ(header.read_message().data, "h");

  auto q = server_->client("/private?access_token=" + t);
  WsClient query = WsClient::connect(q);
  query.send_text("q");
  EXPECT_EQ(query.read_message().data, "q");

  WsClient cookie =
      WsClient::connect(with_header("/private", "Cookie", "theme=dark; access_token=" + t));
  cookie.send_text("c");
  EXPECT_EQ(cookie.read_message().data, "c");
  // A Cookie sent as two lines is one list (RFC 6265 5.4); lws 4.1.6 joined them with nothing
  // between ("theme=darkaccess_token=..."), a 401.
  TcpConn split = TcpConn::connect("127.0.0.1", server_->port);
  split.send_all(
      "GET /private HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Cookie: theme=dark\r\nCookie: access_token=" +
      t + "\r\n\r\n");
  EXPECT_EQ(split.read_http_response(std::chrono::seconds(2)).status, 101);

  // In Sec-WebSocket-Protocol beside a real subprotocol: the real one is selected, the token is
  // never echoed back.
  WsClient sub = WsClient::connect(
      with_header("/private", "Sec-WebSocket-Protocol", "bearer." + t + ", chat.v1"));
  EXPECT_EQ(sub.handshake_response().header("Sec-WebSocket-Protocol"), "chat.v1");
  sub.send_text("s");
  EXPECT_EQ(sub.read_message().data, "s");

  // A bearer token alone, with no real subprotocol, cannot be answered: a clear 400.
  auto r = refusal(with_header("/private", "Sec-WebSocket-Protocol", "bearer." + t));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("offer a subprotocol"), std::string::npos) << r->body;
  ASSERT_TRUE(server_->process->wait_for_output("user=alice", 2s));
  EXPECT_EQ(server_->process->output().find(t), std::string::npos);
}

TEST_F(AuthTest, UnsupportedSubprotocolIsAClear400) {
  // (MQTT clients are answered in MQTT instead: MqttClientOnAJsonRoute, #13.16.)
  auto r = refusal(with_header("/open", "Sec-WebSocket-Protocol", "stomp"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("no supported subprotocol"), std::string::npos) << r->body;
}

TEST_F(AuthTest, ApiKeys) {
  WsClient ws = WsClient::connect(with_header("/private", "Authorization", "Bearer " + kApiKey));
  ws.send_text("k");
  EXPECT_EQ(ws.read_message().data, "k");
  ASSERT_TRUE(server_->process->wait_for_output("user=dashboard", 2s));
  EXPECT_EQ(server_->process->output().find(kApiKey), std::string::npos);
  // The key's claims decide its routes too: role viewer is not operator.
  auto r = refusal(with_header("/operators", "Authorization", "Bearer " + kApiKey));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
}

TEST_F(AuthTest, ValidButNotAllowedHereIs403) {
  EXPECT_FALSE(refusal(with_header("/admins", "Authorization", "Bearer " + token("alice"))));
  auto r = refusal(with_header("/admins", "Authorization", "Bearer " + token("bob")));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_FALSE(refusal(with_header("/operators", "Authorization",
                                   "Bearer " + token("carol", 300, {{"role", "operator"}}))));
  EXPECT_EQ(refusal(with_header("/operators", "Authorization",
                                "Bearer " + token("dave", 300, {{"role", "guest"}})))
                ->status,
            403);
}

TEST_F(AuthTest, OriginAllowlist) {
  EXPECT_FALSE(refusal(with_header("/browser", "Origin", "https://app.example.com")));
  EXPECT_FALSE(refusal(with_header("/browser", "Origin", "https://eu.shop.example.org")));
  for (const std::string bad : {"https://evil.com", "http://app.example.com", "https://example.org",
                                "https://app.example.com.evil.com", "https://evilexample.org"}) {
    auto r = refusal(with_header("/browser", "Origin", bad));
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->status, 403) << bad;
  }
  auto missing = refusal(server_->client("/browser"));
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 403);
  EXPECT_FALSE(refusal(server_->client("/open")));  // no policy: non-browser clients welcome
}

TEST_F(AuthTest, PerIpConnectionLimitIs503) {
  std::vector<WsClient> held;
  std::optional<HttpResponse> refused;
  for (int i = 0; i < 45 && !refused; ++i) {
    try {
      held.push_back(WsClient::connect(server_->client("/open")));
    } catch (const HandshakeError& e) {
      refused = e.response();
    }
  }
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  EXPECT_LE(held.size(), 40u);
  held.clear();  // closing frees the slots again
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(refusal(server_->client("/open")));
}

TEST_F(AuthTest, RateLimitAnswersThenCloses) {
  WsClient ws = WsClient::connect(server_->client("/limited"));
  for (int i = 0; i < 5; ++i) ws.send_text("m" + std::to_string(i));  // the burst passes
  for (int i = 0; i < 5; ++i) EXPECT_EQ(ws.read_message().data, "m" + std::to_string(i));
  // Refused messages never reach the adapter (no echo); ten refusals in a row close the
  // connection. (Twelve, all in one write, so the server has read everything when it closes.)
  std::string burst;
  for (int i = 0; i < 12; ++i)
    burst += encode_frame(Opcode::kText, "flood", true, random_mask_key());
  ws.tcp().send_all(burst);
  EXPECT_EQ(ws.wait_close(5s), 1008);
}

TEST(AuthExpiryTest, ExpiredTokenClosesWith1008UnlessRefreshed) {
  setenv("WSBRIDGE_TEST_JWT_SECRET", kSecret.c_str(), 1);
  WsbridgeInstance server(config());
  auto mint = [](const std::string& sub, long long ttl) {
    return sign_hs256(
        {{"sub", sub}, {"iss", "tests"}, {"aud", "wsbridge"}, {"exp", unix_now() + ttl}}, kSecret);
  };
  auto opts = server.client("/private");
  opts.extra_headers.emplace_back("Authorization", "Bearer " + mint("alice", 2));
  WsClient lapsing = WsClient::connect(opts);
  WsClient refreshed = WsClient::connect(opts);
  // Another user's token is refused and changes nothing.
  refreshed.send_text(json({{"type", "auth"}, {"token", mint("bob", 60)}, {"id", 1}}).dump());
  json r = json::parse(refreshed.read_message().data);
  EXPECT_EQ(r["type"], "error");
  EXPECT_EQ(r["code"], "forbidden");
  refreshed.send_text(json({{"type", "auth"}, {"token", mint("alice", 60)}, {"id", 2}}).dump());
  EXPECT_EQ(json::parse(refreshed.read_message().data), json({{"type", "ack"}, {"id", 2}}));

  EXPECT_EQ(lapsing.wait_close(6s), 1008);
  refreshed.send_text("still here");
  EXPECT_EQ(refreshed.read_message(3s).data, "still here");
}

TEST(AuthLimitsTest, HandshakeTimeoutDropsSlowClients) {
  WsbridgeInstance server("[limits]\nhandshake_timeout = \"1s\"\n[[listeners]]\nport = ${PORT}\n");
  TcpConn slow = TcpConn::connect("127.0.0.1", server.port);
  slow.send_all("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // never finishes its request
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(slow.wait_closed(5s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
}

TEST(AuthLimitsTest, ListenerOriginRulesApplyToEveryRoute) {
  WsbridgeInstance server(
      "[[listeners]]\nport = ${PORT}\nallowed_origins = [\"https://ok.example\"]\n"
      "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\n");
  auto good = server.client("/e");
  good.extra_headers.emplace_back("Origin", "https://ok.example");
  EXPECT_NO_THROW(WsClient::connect(good));
  auto bad = server.client("/e");
  bad.extra_headers.emplace_back("Origin", "https://bad.example");
  try {
    WsClient::connect(bad);
    FAIL() << "accepted";
  } catch (const HandshakeError& e) {
    EXPECT_EQ(e.response().status, 403);
  }
  EXPECT_NO_THROW(WsClient::connect(server.client("/e")));  // no Origin: allowed by default
}

TEST(AuthMqttTest, RateLimitedAndSubscriptionLimitAnswerWithErrors) {
  Mosquitto broker;
  WsbridgeInstance server(R"(
[[listeners]]
port = ${PORT}
[upstreams.local]
uri = ")" + broker.uri() + R"("
[[routes]]
path = "/mqtt"
adapter = "mqtt"
upstream = "local"
allow_subscribe = ["#"]
max_subscriptions = 2
[[routes]]
path = "/limited"
adapter = "mqtt"
upstream = "local"
rate = 1
burst = 3
)");
  ASSERT_TRUE(server.process->wait_for_output("upstream local: connected", 10s));
  WsClient ws = WsClient::connect(server.client("/mqtt"));
  EXPECT_EQ(json::parse(ws.read_message().data)["type"], "status");
  auto request = [&](json j) {
    ws.send_text(j.dump());
    return json::parse(ws.read_message().data);
  };
  EXPECT_EQ(request({{"type", "subscribe"}, {"topic", "a"}, {"id", 1}})["type"], "ack");
  EXPECT_EQ(request({{"type", "subscribe"}, {"topic", "b"}, {"id", 2}})["type"], "ack");
  json r = request({{"type", "subscribe"}, {"topic", "c"}, {"id", 3}});
  EXPECT_EQ(r["code"], "forbidden");
  EXPECT_NE(r["message"].get<std::string>().find("at most 2 subscriptions"), std::string::npos);

  // Rate: one token a second, three at once. Four pings sent together (not each after the
  // previous answer: a subscribe's round trip to the broker took over a second in a loaded TSan
  // run, and a token had come back): the fourth is refused.
  WsClient limited = WsClient::connect(server.client("/limited"));
  EXPECT_EQ(json::parse(limited.read_message().data)["type"], "status");
  for (int id = 1; id <= 4; ++id) limited.send_text(json{{"type", "ping"}, {"id", id}}.dump());
  // (The refusal is answered by the service thread, the pongs by the broker's worker: in any
  // order.)
  std::map<int, json> answers;
  for (int n = 0; n < 4; ++n) {
    const json a = json::parse(limited.read_message().data);
    answers[a["id"].get<int>()] = a;
  }
  for (int id = 1; id <= 3; ++id) EXPECT_EQ(answers[id]["type"], "pong") << answers[id];
  EXPECT_EQ(answers[4]["type"], "error") << answers[4];
  EXPECT_EQ(answers[4]["code"], "rate_limited") << answers[4];
  std::this_thread::sleep_for(1100ms);  // a token comes back
  limited.send_text(json{{"type", "ping"}, {"id", 5}}.dump());
  EXPECT_EQ(json::parse(limited.read_message().data)["type"], "pong");

  // Ten refusals in a row close the connection (1008), and each of the ten is answered before
  // the close: the last one's error frame used to be dropped by it. (The pongs come from the
  // broker's worker, and may come after the close: not counted.)
  WsClient flood = WsClient::connect(server.client("/limited"));
  EXPECT_EQ(json::parse(flood.read_message().data)["type"], "status");
  std::string all;
  for (int id = 1; id <= 13; ++id) {
    all += encode_frame(Opcode::kText, json{{"type", "ping"}, {"id", id}}.dump(), true,
                        random_mask_key());
  }
  flood.tcp().send_all(all);
  std::set<int> refused;
  for (;;) {
    const WsClient::Message m = flood.read_message(5s);
    if (m.opcode == Opcode::kClose) {
      EXPECT_EQ(m.close_code(), 1008);
      break;
    }
    const json a = json::parse(m.data);
    if (a["type"] == "error" && a["code"] == "rate_limited") refused.insert(a["id"].get<int>());
  }
  EXPECT_EQ(refused, (std::set<int>{4, 5, 6, 7, 8, 9, 10, 11, 12, 13}));
}

TEST(AuthLimitsTest, ListenerAuthAppliesToRoutesWithoutTheirOwn) {
  WsbridgeInstance server(R"(
[[api_keys]]
name = "dashboard"
sha256 = "1cad2248e8fecd0a5a5f693d28225ed3c8d0acf2fce3284800bf2c31a8a1947c"
[[listeners]]
port = ${PORT}
[listeners.auth]
api_keys = true
[[routes]]
path = "/inherits"
adapter = "echo"
[[routes]]
path = "/public"
adapter = "echo"
[routes.auth]
required = false
)");
  auto anonymous = [&](const std::string& path) -> int {
    try {
      WsClient::connect(server.client(path));
      return 101;
    } catch (const HandshakeError& e) {
      return e.response().status;
    }
  };
  EXPECT_EQ(anonymous("/inherits"), 401);
  EXPECT_EQ(anonymous("/public"), 101);  // its own auth table replaces the listener's
  auto keyed = server.client("/inherits");
  keyed.extra_headers.emplace_back("Authorization", "Bearer " + kApiKey);
  EXPECT_NO_THROW(WsClient::connect(keyed));
}

TEST(AuthLimitsTest, TotalConnectionLimitIs503) {
  WsbridgeInstance server(
      "[limits]\nmax_connections = 3\n[[listeners]]\nport = ${PORT}\n"
      "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\n");
  std::vector<WsClient> held;
  for (int i = 0; i < 3; ++i) held.push_back(WsClient::connect(server.client("/e")));
  try {
    WsClient::connect(server.client("/e"));
    FAIL() << "a fourth connection was accepted";
  } catch (const HandshakeError& e) {
    EXPECT_EQ(e.response().status, 503);
  }
}

TEST(AuthMqttTest, CredentialAclIsIntersectedWithTheRoutesAndFillsPlaceholders) {
  setenv("WSBRIDGE_TEST_JWT_SECRET", kSecret.c_str(), 1);
  Mosquitto broker;
  WsbridgeInstance server(R"(
[jwt.main]
secret_env = "WSBRIDGE_TEST_JWT_SECRET"
[[listeners]]
port = ${PORT}
[upstreams.local]
uri = ")" + broker.uri() + R"("
[[routes]]
path = "/mqtt"
adapter = "mqtt"
upstream = "local"
allow_subscribe = ["users/{user}/#", "public/#"]
allow_publish = ["users/{user}/#"]
[routes.auth]
jwt = "main"
acl_claim = "wsb"
)");
  ASSERT_TRUE(server.process->wait_for_output("upstream local: connected", 10s));
  auto opts = server.client("/mqtt");
  opts.extra_headers.emplace_back(
      "Authorization",
      "Bearer " +
          sign_hs256(
              {{"sub", "alice"},
               {"exp", unix_now() + 300},
               {"wsb", {{"sub", {"users/alice/#", "public/news"}}, {"pub", {"users/+/inbox"}}}}},
              kSecret));
  WsClient ws = WsClient::connect(opts);
  EXPECT_EQ(json::parse(ws.read_message().data)["type"], "status");
  auto request = [&](json j) {
    ws.send_text(j.dump());
    return json::parse(ws.read_message().data);
  };
  // Route allows users/alice/# ({user} filled in) and the claim allows it: ok.
  EXPECT_EQ(request({{"type", "subscribe"}, {"topic", "users/alice/#"}, {"id", 1}})["type"], "ack");
  // Route allows public/#, but the claim only public/news.
  EXPECT_EQ(request({{"type", "subscribe"}, {"topic", "public/#"}, {"id", 2}})["code"],
            "forbidden");
  EXPECT_EQ(request({{"type", "subscribe"}, {"topic", "public/news"}, {"id", 3}})["type"], "ack");
  // Another user's tree: the route's {user} stops it even though the claim's + would allow it.
  EXPECT_EQ(request({{"type", "publish"}, {"topic", "users/bob/inbox"}, {"id", 4}})["code"],
            "forbidden");
  EXPECT_EQ(request({{"type", "publish"}, {"topic", "users/alice/inbox"}, {"id", 5}})["type"],
            "ack");
}

}  // namespace
}  // namespace wsbridge::testing
