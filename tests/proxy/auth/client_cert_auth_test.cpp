// Client certificates (mTLS) in the handshake decision (proxy/src/auth/authenticator.cpp): a
// verified certificate as a credential, and its cert.* claims, which no token or key can set.
#include <gtest/gtest.h>

#include "auth/authenticator.hpp"
#include "support/jwt_sign.hpp"

namespace wsbridge::auth {
namespace {

using testing::sign_hs256;
using testing::unix_now;

const std::string kJwtSecret = "unit-test-secret-unit-test-secret-0123";

tls::ClientCertificate device() {
  return tls::ClientCertificate{
      "device-1", {"URI:urn:dev:device-1", "DNS:d1.example.test"}, "ab12"};
}

class ClientCertAuthTest : public ::testing::Test {
 protected:
  ClientCertAuthTest() {
    auto v = std::make_shared<JwtVerifier>();
    v->name = "main";
    v->keys.push_back(JwtKey::hmac_secret(kJwtSecret));
    verifier_ = v;
  }
  AuthDecision run(const RouteAuth& route, const HandshakeRequest& r) {
    return authenticate(route, settings_, r, std::chrono::system_clock::now());
  }
  std::string token(nlohmann::json claims) {
    claims["exp"] = unix_now() + 60;
    return sign_hs256(claims, kJwtSecret);
  }
  std::shared_ptr<const JwtVerifier> verifier_;
  AuthSettings settings_;
};

// A browser presents its client certificate whichever page opens the connection: as a cookie,
// it is taken as the credential only from the server's own origin or an allowlisted one.
TEST_F(ClientCertAuthTest, ACertificateFromAPageOfAnotherOriginIsNotACredential) {
  RouteAuth route;
  route.client_cert = true;
  route.required = true;
  HandshakeRequest r;
  r.client_cert = device();
  r.host = "devices.example.com";
  r.origin = "https://evil.example.org";
  AuthDecision d = run(route, r);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.status, 403u);
  EXPECT_EQ(d.code, "origin");
  EXPECT_EQ(d.reason.rfind("a client certificate is not taken as a credential", 0), 0u) << d.reason;
  route.required = false;
  EXPECT_EQ(run(route, r).status, 403u);
  route.required = true;
  r.origin = "https://devices.example.com";
  EXPECT_EQ(run(route, r).user, "device-1");
  r.origin.reset();  // a device's own client sends no Origin
  EXPECT_EQ(run(route, r).user, "device-1");
  r.origin = "https://console.example.org";
  route.origins.allowed = {"https://console.example.org"};
  EXPECT_EQ(run(route, r).user, "device-1");
}

// A page of another origin with a token of its own is judged by the token, but the browser's
// certificate lends it nothing: no cert.* claims (ACL templates and required_claims read them),
// and require_client_cert is not met by it.
TEST_F(ClientCertAuthTest, AForeignPageGetsNoCertificateClaims) {
  RouteAuth route;
  route.jwt = verifier_;
  route.client_cert = true;
  route.required = true;
  HandshakeRequest r;
  r.client_cert = device();
  r.host = "devices.example.com";
  r.origin = "https://evil.example.org";
  r.query = {{"access_token", token({{"sub", "mallory"}})}};
  AuthDecision d = run(route, r);
  ASSERT_TRUE(d.allowed) << d.reason;
  EXPECT_EQ(d.user, "mallory");
  EXPECT_FALSE(d.claims.contains("cert.cn")) << d.claims.dump();
  EXPECT_FALSE(d.claims.contains("cert.fingerprint"));
  route.required_claims = {{"cert.cn", {"device-1"}}};
  EXPECT_EQ(run(route, r).status, 403u);
  const auto foreign = client_certificate_missing(route, r, OriginPolicy{});
  ASSERT_TRUE(foreign);
  EXPECT_EQ(foreign->status, 403u);
  EXPECT_EQ(foreign->code, "origin");
  // From the server's own page both hold.
  r.origin = "https://devices.example.com";
  EXPECT_EQ(run(route, r).claims["cert.cn"], "device-1");
  EXPECT_FALSE(client_certificate_missing(route, r, OriginPolicy{}));
  r.client_cert.reset();
  const auto none = client_certificate_missing(route, r, OriginPolicy{});
  ASSERT_TRUE(none);
  EXPECT_EQ(none->code, "client_cert");
}

TEST_F(ClientCertAuthTest, AVerifiedCertificateAuthenticatesAsItsCommonName) {
  RouteAuth route;
  route.client_cert = true;
  route.required = true;
  HandshakeRequest r;
  EXPECT_EQ(run(route, r).status, 401u);  // required, and nothing presented
  r.client_cert = device();
  const AuthDecision d = run(route, r);
  ASSERT_TRUE(d.allowed) << d.reason;
  EXPECT_EQ(d.user, "device-1");
  EXPECT_EQ(d.method, "client_cert");
  EXPECT_EQ(d.claims["cert.cn"], "device-1");
  EXPECT_EQ(d.claims["cert.san"],
            nlohmann::json::array({"URI:urn:dev:device-1", "DNS:d1.example.test"}));
  EXPECT_EQ(d.claims["cert.fingerprint"], "ab12");
  r.client_cert->cn.clear();  // no CN: the fingerprint names it
  EXPECT_EQ(run(route, r).user, "ab12");
  r.client_cert->cn = "device-1\r\nX-Wsbridge-User: admin";  // a CA's odd subject
  const AuthDecision odd = run(route, r);
  EXPECT_FALSE(odd.allowed);
  EXPECT_EQ(odd.status, 401u);
  EXPECT_EQ(odd.reason, "the client certificate's common name holds control characters");
}

TEST_F(ClientCertAuthTest, ACertificateIsNoCredentialUnlessTheRouteSaysSo) {
  RouteAuth route;
  route.jwt = verifier_;
  route.required = true;
  HandshakeRequest r;
  r.client_cert = device();
  EXPECT_EQ(run(route, r).status, 401u);
}

TEST_F(ClientCertAuthTest, ATokenStillWinsAndTheCertificateClaimsJoinIt) {
  RouteAuth route;
  route.jwt = verifier_;
  route.client_cert = true;
  HandshakeRequest r;
  r.client_cert = device();
  r.authorization = "Bearer " + token({{"sub", "alice"}});
  const AuthDecision d = run(route, r);
  ASSERT_TRUE(d.allowed) << d.reason;
  EXPECT_EQ(d.user, "alice");
  EXPECT_EQ(d.method, "jwt");
  EXPECT_EQ(d.claims["cert.cn"], "device-1");
}

TEST_F(ClientCertAuthTest, TokensCannotClaimACertificate) {
  RouteAuth route;
  route.jwt = verifier_;
  HandshakeRequest r;
  r.authorization = "Bearer " + token({{"sub", "mallory"},
                                       {"cert.cn", "device-1"},
                                       {"cert.fingerprint", "ab12"},
                                       {"cert.san", {"URI:urn:dev:device-1"}}});
  AuthDecision d = run(route, r);
  ASSERT_TRUE(d.allowed) << d.reason;
  EXPECT_FALSE(d.claims.contains("cert.cn"));
  EXPECT_FALSE(d.claims.contains("cert.fingerprint"));
  EXPECT_FALSE(d.claims.contains("cert.san"));
  r.client_cert = device();
  r.client_cert->cn = "device-9";
  d = run(route, r);
  EXPECT_EQ(d.claims["cert.cn"], "device-9");  // the handshake's, not the token's
}

TEST_F(ClientCertAuthTest, RequiredClaimsMaySelectCertificates) {
  RouteAuth route;
  route.client_cert = true;
  route.required = true;
  route.required_claims["cert.cn"] = {"device-1"};
  HandshakeRequest r;
  r.client_cert = device();
  EXPECT_TRUE(run(route, r).allowed);
  r.client_cert->cn = "device-2";
  EXPECT_EQ(run(route, r).status, 403u);
}

TEST_F(ClientCertAuthTest, ReauthenticationKeepsTheCertificateClaims) {
  RouteAuth route;
  route.jwt = verifier_;
  route.required_claims["cert.cn"] = {"device-1"};
  HandshakeRequest r;
  r.client_cert = device();
  r.authorization = "Bearer " + token({{"sub", "alice"}});
  const AuthDecision first = run(route, r);
  ASSERT_TRUE(first.allowed) << first.reason;
  const AuthDecision again = reauthenticate(route, "alice", first.claims, token({{"sub", "alice"}}),
                                            std::chrono::system_clock::now());
  EXPECT_TRUE(again.allowed) << again.reason;
  EXPECT_EQ(again.claims["cert.cn"], "device-1");
}

}  // namespace
}  // namespace wsbridge::auth
