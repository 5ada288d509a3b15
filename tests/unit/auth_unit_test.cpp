// The handshake decision without sockets: credential sources, API keys, tokens, Origin rules,
// per-route authorization, and the bearer subprotocol rewrite.
#include <gtest/gtest.h>

#include "auth/authenticator.hpp"
#include "handshake/bearer_subprotocol.hpp"
#include "support/jwt_sign.hpp"

namespace wsbridge::auth {
namespace {

using testing::sign_hs256;
using testing::unix_now;
const std::string kSecret = "unit-test-secret-unit-test-secret-0123";

class AuthenticatorTest : public ::testing::Test {
 protected:
  AuthenticatorTest() {
    auto v = std::make_shared<JwtVerifier>();
    v->name = "main";
    v->keys.push_back(JwtKey::hmac_secret(kSecret));
    verifier_ = v;
    ApiKey key;
    key.name = "robot";
    key.sha256 = sha256_hex("robot-key");
    key.claims = {{"role", "device"}};
    key.acl = TopicAcl{{"devices/robot/#"}, {"devices/robot/out"}};
    settings_.api_keys.push_back(key);
    route_.jwt = verifier_;
    route_.api_keys = true;
    route_.required = true;
  }
  AuthDecision run(const HandshakeRequest& r) {
    return authenticate(route_, settings_, r, std::chrono::system_clock::now());
  }
  std::string token(const std::string& sub, nlohmann::json extra = nlohmann::json::object()) {
    nlohmann::json claims = {{"sub", sub}, {"exp", unix_now() + 60}};
    claims.update(extra);
    return sign_hs256(claims, kSecret);
  }
  std::shared_ptr<const JwtVerifier> verifier_;
  AuthSettings settings_;
  RouteAuth route_;
};

TEST_F(AuthenticatorTest, MissingCredentialsChallenge) {
  AuthDecision d = run({});
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.status, 401u);
  EXPECT_TRUE(d.challenge);
  route_.required = false;
  d = run({});
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.user, "");
  EXPECT_EQ(d.method, "");
}

TEST_F(AuthenticatorTest, EverySourceInConfiguredOrder) {
  HandshakeRequest r;
  r.authorization = "Bearer " + token("from-header");
  r.query = {{"other", "x"}, {"access_token", token("from-query")}};
  r.cookie = "a=b; access_token=" + token("from-cookie") + "; c=d";
  r.subprotocols = {"chat", "bearer." + token("from-subprotocol")};
  EXPECT_EQ(run(r).user, "from-header");
  route_.sources = {CredentialSource::kQuery, CredentialSource::kHeader};
  EXPECT_EQ(run(r).user, "from-query");
  route_.sources = {CredentialSource::kCookie};
  EXPECT_EQ(run(r).user, "from-cookie");
  route_.sources = {CredentialSource::kSubprotocol};
  EXPECT_EQ(run(r).user, "from-subprotocol");
  route_.query_param = "t";
  route_.sources = {CredentialSource::kQuery};
  EXPECT_EQ(run(r).status, 401u);  // the configured name is not there
}

TEST_F(AuthenticatorTest, ApiKeysCarryNameClaimsAndAcl) {
  HandshakeRequest r;
  r.authorization = "bearer robot-key";  // the scheme is case-insensitive
  AuthDecision d = run(r);
  ASSERT_TRUE(d.allowed) << d.reason;
  EXPECT_EQ(d.user, "robot");
  EXPECT_EQ(d.method, "api_key");
  EXPECT_EQ(d.claims["role"], "device");
  ASSERT_TRUE(d.acl);
  EXPECT_EQ(d.acl->subscribe, std::vector<std::string>{"devices/robot/#"});
  r.authorization = "Bearer robot-kez";
  EXPECT_EQ(run(r).status, 401u);
  route_.jwt = nullptr;
  EXPECT_EQ(run(r).reason, "invalid credentials: unknown API key");
}

TEST_F(AuthenticatorTest, TokensAndTheirAclClaim) {
  route_.acl_claim = "wsb";
  HandshakeRequest r;
  r.authorization = "Bearer " + token("alice", {{"wsb", {{"sub", {"a/#"}}, {"pub", {"b/+"}}}}});
  AuthDecision d = run(r);
  ASSERT_TRUE(d.allowed) << d.reason;
  EXPECT_EQ(d.method, "jwt");
  ASSERT_TRUE(d.expires_at);
  ASSERT_TRUE(d.acl);
  EXPECT_EQ(d.acl->subscribe, std::vector<std::string>{"a/#"});
  EXPECT_EQ(d.acl->publish, std::vector<std::string>{"b/+"});
  // A malformed ACL claim allows nothing rather than everything.
  r.authorization = "Bearer " + token("alice", {{"wsb", "everything"}});
  d = run(r);
  ASSERT_TRUE(d.acl);
  EXPECT_TRUE(d.acl->subscribe.empty());
  // Without the claim: no restriction beyond the route's.
  r.authorization = "Bearer " + token("alice");
  EXPECT_FALSE(run(r).acl);
}

TEST_F(AuthenticatorTest, RouteAuthorizationIs403) {
  route_.allowed_users = {"alice"};
  HandshakeRequest r;
  r.authorization = "Bearer " + token("bob");
  AuthDecision d = run(r);
  EXPECT_EQ(d.status, 403u);
  EXPECT_FALSE(d.challenge);
  route_.allowed_users.clear();
  route_.required_claims = {{"groups", {"ops"}}};
  r.authorization = "Bearer " + token("bob", {{"groups", {"dev", "ops"}}});
  EXPECT_TRUE(run(r).allowed);
  r.authorization = "Bearer " + token("bob", {{"groups", {"dev"}}});
  EXPECT_EQ(run(r).status, 403u);
}

TEST_F(AuthenticatorTest, OriginIsCheckedFirst) {
  route_.origins.allowed = {"https://app.example.com"};
  route_.origins.allow_missing = false;
  HandshakeRequest r;
  r.authorization = "Bearer " + token("alice");
  r.origin = "https://APP.example.com";
  EXPECT_TRUE(run(r).allowed);
  r.origin = "https://evil.example.com";
  EXPECT_EQ(run(r).status, 403u);
  r.origin.reset();
  EXPECT_EQ(run(r).status, 403u);
}

TEST_F(AuthenticatorTest, ReauthenticationKeepsTheUser) {
  const auto now = std::chrono::system_clock::now();
  HandshakeRequest r;
  r.authorization = "Bearer " + token("alice");
  const nlohmann::json admitted = run(r).claims;
  EXPECT_TRUE(reauthenticate(route_, "alice", admitted, token("alice"), now).allowed);
  EXPECT_EQ(reauthenticate(route_, "alice", admitted, token("bob"), now).status, 403u);
  EXPECT_EQ(reauthenticate(route_, "alice", admitted, "garbage", now).status, 401u);
}

// #13.2: a refresh passes the route's own rules and keeps the connection's claims.
TEST_F(AuthenticatorTest, ReauthenticationPassesTheRouteRulesAndKeepsTheClaims) {
  const auto now = std::chrono::system_clock::now();
  HandshakeRequest r;
  r.authorization = "Bearer " + token("alice", {{"role", "admin"}});
  const nlohmann::json admitted = run(r).claims;
  EXPECT_TRUE(
      reauthenticate(route_, "alice", admitted, token("alice", {{"role", "admin"}}), now).allowed);
  EXPECT_EQ(
      reauthenticate(route_, "alice", admitted, token("alice", {{"role", "viewer"}}), now).status,
      403u);
  EXPECT_EQ(reauthenticate(route_, "alice", admitted, token("alice"), now).status, 403u);
  route_.required_claims = {{"role", {"owner"}}};
  EXPECT_EQ(
      reauthenticate(route_, "alice", admitted, token("alice", {{"role", "admin"}}), now).status,
      403u);
  route_.required_claims.clear();
  route_.allowed_users = {"bob"};
  EXPECT_EQ(
      reauthenticate(route_, "alice", admitted, token("alice", {{"role", "admin"}}), now).status,
      403u);
}

TEST(OriginTest, PatternsAndMatching) {
  EXPECT_FALSE(origin_pattern_problem("https://app.example.com"));
  EXPECT_FALSE(origin_pattern_problem("http://localhost:8080"));
  EXPECT_FALSE(origin_pattern_problem("https://*.example.com"));
  EXPECT_TRUE(origin_pattern_problem("app.example.com"));
  EXPECT_TRUE(origin_pattern_problem("ftp://example.com"));
  EXPECT_TRUE(origin_pattern_problem("https://example.com/path"));
  EXPECT_TRUE(origin_pattern_problem("https://ex*ample.com"));
  OriginPolicy p{{"https://*.example.com", "http://localhost:8080"}, true};
  EXPECT_TRUE(p.allows(std::string("https://a.example.com")));
  EXPECT_TRUE(p.allows(std::string("https://a.b.example.com")));
  EXPECT_FALSE(p.allows(std::string("https://example.com")));
  EXPECT_FALSE(p.allows(std::string("https://aexample.com")));
  EXPECT_FALSE(p.allows(std::string("https://a.example.com:8443")));
  EXPECT_FALSE(p.allows(std::string("https://a.example.com.evil.net")));
  EXPECT_TRUE(p.allows(std::string("http://localhost:8080")));
  EXPECT_FALSE(p.allows(std::string("http://localhost:8081")));
  EXPECT_FALSE(p.allows(std::string("null")));
  EXPECT_TRUE(p.allows(std::nullopt));
}

std::string extract(std::string head, std::optional<BearerExtraction>* out = nullptr) {
  std::size_t len = head.size();
  auto r = extract_bearer_subprotocol(head.data(), len);
  if (out) *out = r;
  head.resize(len);
  return head;
}

TEST(BearerSubprotocolTest, TakesTheTokenOutOfTheHead) {
  const std::string token(600, 't');  // far over lws' 64-byte protocol name limit
  std::optional<BearerExtraction> found;
  const std::string head = "GET /x HTTP/1.1\r\nHost: h\r\nsec-websocket-protocol: bearer." + token +
                           ", chat.v1\r\nUpgrade: websocket\r\n\r\nFRAME";
  EXPECT_EQ(extract(head, &found),
            "GET /x HTTP/1.1\r\nHost: h\r\nsec-websocket-protocol:chat.v1\r\nUpgrade: "
            "websocket\r\n\r\nFRAME");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->token, token);
  EXPECT_FALSE(found->only_bearer);
}

TEST(BearerSubprotocolTest, ManyShortValuesNeverGrowTheLine) {
  // Found by fuzz_frames: re-joining many one-letter values with ", " made the line longer than
  // the original and the in-place rewrite wrote past the buffer.
  std::optional<BearerExtraction> found;
  EXPECT_EQ(
      extract("GET /mqtt HTTP/1.1\r\nSec-WebSocket-Protocol:a,b,c,d,e,f,g,h,i,j,k,bearer.x\r\n\r\n",
              &found),
      "GET /mqtt HTTP/1.1\r\nSec-WebSocket-Protocol:a,b,c,d,e,f,g,h,i,j,k\r\n\r\n");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->token, "x");
}

TEST(BearerSubprotocolTest, DropsTheLineWhenOnlyABearerWasOffered) {
  std::optional<BearerExtraction> found;
  EXPECT_EQ(
      extract("GET / HTTP/1.1\r\nSec-WebSocket-Protocol: bearer.abc\r\nHost: h\r\n\r\n", &found),
      "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(found);
  EXPECT_TRUE(found->only_bearer);
}

TEST(BearerSubprotocolTest, LeavesEverythingElseAlone) {
  for (const std::string& head :
       {std::string("GET / HTTP/1.1\r\nSec-WebSocket-Protocol: chat, mqtt\r\n\r\n"),
        std::string("GET / HTTP/1.1\r\nHost: h\r\n\r\nSec-WebSocket-Protocol: bearer.x\r\n"),
        std::string("GET / HTTP/1.1\r\nSec-WebSocket-Protocol: bearer.x"),  // line not complete
        std::string("Sec-WebSocket-Protocol: bearer.x\r\n")}) {             // not a header line
    std::optional<BearerExtraction> found;
    EXPECT_EQ(extract(head, &found), head);
    EXPECT_FALSE(found);
  }
}

}  // namespace
}  // namespace wsbridge::auth
