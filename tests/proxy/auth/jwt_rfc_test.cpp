// JWT verification (proxy/src/auth/jwt.cpp) against the RFC 7515 / RFC 8037 examples, which
// anchor the encoding and the signature formats.
#include <gtest/gtest.h>

#include "auth/jwt.hpp"
#include "jwt_fixture.hpp"

namespace wsbridge::auth {
namespace {

using namespace jwt_test;

// ---- RFC examples -------------------------------------------------------------------------------

// RFC 7515 Appendix A.1: HS256 with the given oct key. The payload has CR LF inside, and its exp
// (1300819380) is in 2011, so `now` is set just before it.
const std::string kRfc7515Payload =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlf"
    "Q";
const std::string kRfc7515A1Token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." + kRfc7515Payload +
                                    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const json kRfc7515A1Jwk = {
    {"kty", "oct"},
    {"k",
     "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}};
const Clock::time_point kRfcNow{std::chrono::seconds(1300819000)};

JwtPolicy rfc_policy() {
  JwtPolicy p;
  p.issuer = "joe";
  return p;
}

TEST(JwtRfcTest, Rfc7515AppendixA1Hs256) {
  const JwtKey key = JwtKey::from_jwk(kRfc7515A1Jwk);
  const Result result = verify_jwt(kRfc7515A1Token, {key}, rfc_policy(), kRfcNow);
  ASSERT_EQ(outcome(result), "verified");
  const auto& verified = std::get<VerifiedToken>(result);
  EXPECT_EQ(verified.header, (json{{"typ", "JWT"}, {"alg", "HS256"}}));
  EXPECT_EQ(verified.claims,
            (json{{"iss", "joe"}, {"exp", 1300819380}, {"http://example.com/is_root", true}}));
  EXPECT_EQ(verified.subject, "");
  EXPECT_EQ(verified.expires_at, Clock::time_point(std::chrono::seconds(1300819380)));
  EXPECT_EQ(base64url_decode(kRfc7515Payload),
            "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}");

  // The same secret given directly.
  const std::string secret = unb64url(kRfc7515A1Jwk.at("k").get<std::string>());
  EXPECT_EQ(
      outcome(verify_jwt(kRfc7515A1Token, {JwtKey::hmac_secret(secret)}, rfc_policy(), kRfcNow)),
      "verified");
  // The test signer reproduces the RFC's signature, so the tokens the other tests build are
  // in the RFC's format.
  const std::string input = kRfc7515A1Token.substr(0, kRfc7515A1Token.rfind('.'));
  EXPECT_EQ(b64url(sign("HS256", SigningKey{secret, nullptr}, input)),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");

  // Its time has passed, another key does not verify it, and it is not RS256-verifiable.
  EXPECT_EQ(outcome(verify_jwt(kRfc7515A1Token, {key}, rfc_policy(),
                               Clock::time_point(std::chrono::seconds(1300819380 + 31)))),
            "expired");
  EXPECT_EQ(outcome(verify_jwt(kRfc7515A1Token, {JwtKey::hmac_secret(secret + "x")}, rfc_policy(),
                               kRfcNow)),
            "bad signature");
  JwtPolicy other_issuer = rfc_policy();
  other_issuer.issuer = "jane";
  EXPECT_EQ(outcome(verify_jwt(kRfc7515A1Token, {key}, other_issuer, kRfcNow)), "issuer mismatch");
}

TEST(JwtRfcTest, Rfc7515AppendixA3Es256) {
  const JwtKey key = JwtKey::from_jwk(json{{"kty", "EC"},
                                           {"crv", "P-256"},
                                           {"x", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"},
                                           {"y", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}});
  const std::string token =
      "eyJhbGciOiJFUzI1NiJ9." + kRfc7515Payload +
      ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
  EXPECT_EQ(outcome(verify_jwt(token, {key}, rfc_policy(), kRfcNow)), "verified");
  std::string tampered = token;
  tampered.back() = 'A';  // "...NU1Q" -> "...NU1A": a different S
  EXPECT_EQ(outcome(verify_jwt(tampered, {key}, rfc_policy(), kRfcNow)), "bad signature");
}

TEST(JwtRfcTest, Rfc8037AppendixA4Ed25519) {
  // The payload is "Example of Ed25519 signing", not a claims object: reaching "malformed payload"
  // shows that the signature itself verified.
  const json jwk = {
      {"kty", "OKP"}, {"crv", "Ed25519"}, {"x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}};
  const std::string input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
  const std::string signature =
      "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
  const JwtKey key = JwtKey::from_jwk(jwk);
  EXPECT_EQ(outcome(verify_jwt(input + "." + signature, {key}, JwtPolicy{}, kRfcNow)),
            "malformed payload");
  std::string tampered = signature;
  tampered[0] = 'i';
  EXPECT_EQ(outcome(verify_jwt(input + "." + tampered, {key}, JwtPolicy{}, kRfcNow)),
            "bad signature");

  // Ed25519 is deterministic: the test signer with the RFC's private key gives the RFC's bytes.
  const std::string d = unb64url("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
  PkeyPtr private_key(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, u8(d), d.size()));
  ASSERT_NE(private_key, nullptr);
  EXPECT_EQ(b64url(sign("EdDSA", SigningKey{"", private_key.get()}, input)), signature);
}

}  // namespace
}  // namespace wsbridge::auth
