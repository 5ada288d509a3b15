// The handshake decision without sockets (proxy/src/auth/authenticator.cpp): credential
// sources, API keys, tokens, Origin first, per-route authorization, re-authentication.
#include <gtest/gtest.h>

#include "auth/authenticator.hpp"
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

// Two tokens in the query: a proxy in front, a log or a backend may read the other one.
TEST_F(AuthenticatorTest, TwoQueryTokensAreRefused) {
  HandshakeRequest r;
  r.query = {{"access_token", token("alice")}, {"x", "1"}, {"access_token", token("mallory")}};
  AuthDecision d = run(r);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.status, 400u);
  EXPECT_EQ(d.code, "bad_request");
  EXPECT_EQ(d.reason, "more than one access_token query argument");
  r.query = {{"access_token", "robot-key"}, {"access_token", "robot-key"}};  // even the same
  EXPECT_EQ(run(r).status, 400u);
  // Not where the query is no credential: another source only, or a route that verifies none.
  route_.sources = {CredentialSource::kHeader};
  r.authorization = "Bearer robot-key";
  EXPECT_EQ(run(r).user, "robot");
  route_ = RouteAuth{};
  EXPECT_TRUE(run(r).allowed);
}

// A browser sends a cookie of one name twice when two paths or domains set it, the most
// specific first (RFC 6265 5.4): the first counts.
TEST_F(AuthenticatorTest, TheFirstOfTwoCookiesCounts) {
  HandshakeRequest r;
  r.cookie = "access_token=" + token("alice") + "; access_token=" + token("mallory");
  route_.sources = {CredentialSource::kCookie};
  EXPECT_EQ(run(r).user, "alice");
}

// Cross-site WebSocket hijacking: a page of another site opening a connection here sends the
// user's cookie along. Without an allowlist the cookie counts only from this server's own origin.
TEST_F(AuthenticatorTest, ACookieFromAPageOfAnotherOriginIsNotACredential) {
  HandshakeRequest r;
  r.cookie = "access_token=" + token("alice");
  r.host = "bridge.example.com";
  r.origin = "https://evil.example.net";
  AuthDecision d = run(r);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.status, 403u);
  EXPECT_EQ(d.code, "origin");
  EXPECT_NE(d.reason.find("https://evil.example.net"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("allowed_origins"), std::string::npos) << d.reason;
  r.host.reset();  // no Host to compare with: not known to be the same origin
  EXPECT_EQ(run(r).status, 403u);
  route_.required = false;  // an optional credential is still not taken from it
  EXPECT_EQ(run(r).status, 403u);
  route_.required = true;
  r.host = "bridge.example.com";

  // The same page with a credential of its own (a header or the query) is judged by that.
  r.authorization = "Bearer " + token("carol");
  EXPECT_EQ(run(r).user, "carol");
  r.authorization.reset();
  // A route that verifies no credentials has no use for the cookie.
  RouteAuth open;
  EXPECT_TRUE(authenticate(open, settings_, r, std::chrono::system_clock::now()).allowed);

  // The server's own pages, and requests without Origin (not a browser's cross-site request).
  r.origin = "https://bridge.example.com";
  EXPECT_EQ(run(r).user, "alice");
  r.origin.reset();
  EXPECT_EQ(run(r).user, "alice");

  // An allowlist (the route's or the listener's) names the origins that may use it.
  r.origin = "https://app.example.net";
  EXPECT_EQ(run(r).status, 403u);
  route_.origins.allowed = {"https://app.example.net"};
  EXPECT_EQ(run(r).user, "alice");
  route_.origins.allowed.clear();
  OriginPolicy listener;
  listener.allowed = {"https://*.example.net"};
  EXPECT_EQ(authenticate(route_, settings_, r, std::chrono::system_clock::now(), listener).user,
            "alice");
}

// The browser's own word (Fetch Metadata), which no page can set, decides first: right behind a
// balancer that rewrites Host, and a cross-site request without Origin (a GET that opens a
// fallback session from an <img>) is still cross-site.
TEST_F(AuthenticatorTest, SecFetchSiteSaysWhereTheRequestCameFrom) {
  HandshakeRequest r;
  r.cookie = "access_token=" + token("alice");
  r.host = "wsbridge-upstream:8080";  // rewritten by the balancer
  r.origin = "https://bridge.example.com";
  EXPECT_EQ(run(r).status, 403);
  r.sec_fetch_site = "same-origin";
  EXPECT_EQ(run(r).user, "alice");
  r.sec_fetch_site = "none";  // typed or bookmarked by the user
  EXPECT_EQ(run(r).user, "alice");
  r.sec_fetch_site = "Cross-Site";
  r.host = "bridge.example.com";  // however well Origin and Host agree
  EXPECT_EQ(run(r).status, 403);
  r.sec_fetch_site = "same-site";  // a sibling subdomain is another origin
  EXPECT_EQ(run(r).status, 403);
  r.origin.reset();
  r.sec_fetch_site = "cross-site";
  EXPECT_EQ(run(r).status, 403);
  EXPECT_EQ(run(r).code, "origin");
  // An allowlist that names the page's origin lets it use the cookie.
  r.origin = "https://app.example.com";
  route_.origins.allowed = {"https://app.example.com"};
  EXPECT_EQ(run(r).user, "alice");
}

// Over TLS, the same host in an http:// page is another origin (anyone on the path can write
// that page).
TEST_F(AuthenticatorTest, OverTlsAnHttpPageIsAnotherOrigin) {
  HandshakeRequest r;
  r.cookie = "access_token=" + token("alice");
  r.host = "bridge.example.com";
  r.origin = "http://bridge.example.com";
  EXPECT_EQ(run(r).user, "alice");  // (plain: behind a balancer that ends TLS, it may be)
  r.tls = true;
  EXPECT_EQ(run(r).status, 403);
  r.origin = "https://bridge.example.com";
  EXPECT_EQ(run(r).user, "alice");
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

TEST_F(AuthenticatorTest, ASubjectWithControlCharactersIsRefused) {
  // It could not reach a backend's X-Wsbridge-User (a line break ends the header), which then
  // saw the signed-in user as nobody.
  HandshakeRequest r;
  for (const std::string& sub : std::vector<std::string>{
           "alice\r\nX-Admin: 1", std::string("a\0b", 3), "a\x0b", "a\x7f", "a\tb"}) {
    r.authorization = "Bearer " + token(sub);
    const AuthDecision d = run(r);
    EXPECT_FALSE(d.allowed) << sub;
    EXPECT_EQ(d.status, 401u);
    EXPECT_EQ(d.reason, "invalid token: its subject holds control characters");
  }
  r.authorization = "Bearer " + token("Ren\u00e9e O'Brien");
  EXPECT_TRUE(run(r).allowed);
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
  EXPECT_EQ(run(r).code, "origin");
}

// The listener's allowlist and the route's are one check with one answer: both must allow.
TEST_F(AuthenticatorTest, ListenerAndRouteOriginsAreOneCheck) {
  OriginPolicy listener;
  listener.allowed = {"https://*.example.com"};
  route_.origins.allowed = {"https://app.example.com", "https://other.test"};
  HandshakeRequest r;
  r.authorization = "Bearer " + token("alice");
  auto run_on_listener = [&] {
    return authenticate(route_, settings_, r, std::chrono::system_clock::now(), listener);
  };
  r.origin = "https://app.example.com";
  EXPECT_TRUE(run_on_listener().allowed);
  for (const char* refused : {"https://other.test", "https://evil.example.com"}) {
    r.origin = refused;
    const AuthDecision d = run_on_listener();
    EXPECT_FALSE(d.allowed) << refused;
    EXPECT_EQ(d.status, 403u) << refused;
    EXPECT_EQ(d.code, "origin") << refused;
    EXPECT_EQ(d.reason, std::string("origin ") + refused + " is not allowed");
  }
  r.origin = "https://app.example.com";
  r.authorization = "Bearer garbage";
  EXPECT_EQ(run_on_listener().code, "invalid_credentials");
  r.authorization.reset();
  EXPECT_EQ(run_on_listener().code, "missing_credentials");
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

}  // namespace
}  // namespace wsbridge::auth
