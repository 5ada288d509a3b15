// Regression tests (#13.2) for token refreshes ({"type":"auth","token":...}): a refresh passes
// exactly what a new handshake would under the configuration in force, and counts against the
// route's rate limit. Each one fails without the fix.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>

#include "integration/wsbridge_instance.hpp"
#include "support/eventually.hpp"
#include "support/jwt_sign.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const std::string kOldSecret = "the-first-hmac-secret-of-32-bytes-or-more";
const std::string kNewSecret = "the-rotated-hmac-secret-of-32-bytes-or-more";

std::string config(const std::string& secret, const std::string& admins) {
  return R"(
[jwt.main]
secret = ")" +
         secret +
         R"("
issuer = "tests"
[[listeners]]
port = ${PORT}
[[routes]]
path = "/admin"
adapter = "echo"
[routes.auth]
jwt = "main"
required_claims = { role = ["admin"] }
[[routes]]
path = "/team"
adapter = "echo"
[routes.auth]
jwt = "main"
allowed_users = )" +
         admins +
         R"(
[[routes]]
path = "/limited"
adapter = "echo"
rate = 1
burst = 2
[routes.auth]
jwt = "main"
)";
}

std::string mint(const std::string& secret, const std::string& sub, json extra = json::object()) {
  json claims = {{"sub", sub}, {"iss", "tests"}, {"exp", unix_now() + 300}};
  claims.update(extra);
  return sign_hs256(claims, secret);
}

class TokenRefreshTest : public ::testing::Test {
 protected:
  WsClient connect(const std::string& path, const std::string& token) {
    ClientOptions opts = server_.client(path);
    opts.extra_headers.emplace_back("Authorization", "Bearer " + token);
    return WsClient::connect(opts);
  }
  json refresh(WsClient& ws, const std::string& token) {
    ws.send_text(json({{"type", "auth"}, {"token", token}, {"id", 7}}).dump());
    return json::parse(ws.read_message().data);
  }
  void reload(const std::string& text) {
    server_.rewrite_config(text);
    const std::size_t before = reloads();
    server_.process->signal(SIGHUP);
    ASSERT_TRUE(eventually([&] { return reloads() > before; })) << "the reload did not happen";
  }
  std::size_t reloads() {
    const std::string out = server_.process->output();
    std::size_t n = 0;
    for (auto p = out.find("configuration reloaded"); p != std::string::npos;
         p = out.find("configuration reloaded", p + 1)) {
      ++n;
    }
    return n;
  }
  WsbridgeInstance server_{config(kOldSecret, R"(["alice", "bob"])")};
};

// An auth message's "id" was copied into the answer unchecked: nested half a million levels
// deep, the copy overflowed the stack and killed the process. Too deep to be an auth message
// now, it is an ordinary message (echoed here).
TEST_F(TokenRefreshTest, AuthMessageNestedTooDeepIsNotACrash) {
  WsClient ws = connect("/team", mint(kOldSecret, "alice"));
  const std::string deep = std::string(500'000, '[') + std::string(500'000, ']');
  const std::string message = R"({"type":"auth","token":"x","id":)" + deep + "}";
  ws.send_text(message);
  EXPECT_EQ(ws.read_message(10s).data, message);
  EXPECT_EQ(refresh(ws, mint(kOldSecret, "alice"))["type"], "ack");
  EXPECT_TRUE(server_.process->running());
}

// A message that names "auth" with a "type" that is not a string is an ordinary message too:
// reading its type as a string threw, and the connection was closed with 1011.
TEST_F(TokenRefreshTest, AMessageWhoseTypeIsNotAStringIsEchoed) {
  WsClient ws = connect("/team", mint(kOldSecret, "alice"));
  for (const std::string message :
       {R"({"type":5,"note":"auth"})", R"({"type":["auth"]})", R"({"type":null,"x":"auth"})"}) {
    ws.send_text(message);
    EXPECT_EQ(ws.read_message(10s).data, message);
  }
  EXPECT_EQ(refresh(ws, mint(kOldSecret, "alice"))["type"], "ack");
}

TEST_F(TokenRefreshTest, AdminRouteRefusesARefreshWithAViewersToken) {
  WsClient ws = connect("/admin", mint(kOldSecret, "alice", {{"role", "admin"}}));
  const json r = refresh(ws, mint(kOldSecret, "alice", {{"role", "viewer"}}));
  EXPECT_EQ(r["type"], "error");
  EXPECT_EQ(r["code"], "forbidden");
  // The same claims with a later expiry are what a refresh is for.
  const json ok =
      refresh(ws, mint(kOldSecret, "alice", {{"role", "admin"}, {"exp", unix_now() + 900}}));
  EXPECT_EQ(ok, json({{"type", "ack"}, {"id", 7}}));
}

TEST_F(TokenRefreshTest, RefreshIsJudgedByTheReloadedKeys) {
  WsClient ws = connect("/team", mint(kOldSecret, "alice"));
  reload(config(kNewSecret, R"(["alice", "bob"])"));
  // Shard 0 logs the reload once it posted it to the other service threads, which take it at
  // their next loop turn: a connection on another shard may see the old keys a moment longer.
  json old_key;
  EXPECT_TRUE(eventually([&] {
    old_key = refresh(ws, mint(kOldSecret, "alice"));
    return old_key["type"] == "error";
  })) << old_key;
  const json new_key = refresh(ws, mint(kNewSecret, "alice"));
  EXPECT_EQ(new_key["type"], "ack") << new_key;
}

TEST_F(TokenRefreshTest, RefreshIsJudgedByTheReloadedUsers) {
  WsClient ws = connect("/team", mint(kOldSecret, "bob"));
  reload(config(kOldSecret, R"(["alice"])"));
  json r;  // (eventually: the other shards take the reload at their next loop turn, as above)
  EXPECT_TRUE(eventually([&] {
    r = refresh(ws, mint(kOldSecret, "bob"));
    return r["type"] == "error";
  })) << r;
  EXPECT_EQ(r["code"], "forbidden");
}

TEST_F(TokenRefreshTest, AuthMessagesCountAgainstTheRateLimit) {
  WsClient ws = connect("/limited", mint(kOldSecret, "alice"));
  // Twelve refreshes in one write: two fit the burst, then ten refusals in a row close it.
  std::string burst;
  for (int i = 0; i < 12; ++i) {
    burst += encode_frame(Opcode::kText,
                          json({{"type", "auth"}, {"token", mint(kOldSecret, "alice")}}).dump(),
                          true, random_mask_key());
  }
  ws.tcp().send_all(burst);
  EXPECT_EQ(ws.wait_close(5s), 1008);
}

}  // namespace
}  // namespace wsbridge::testing
