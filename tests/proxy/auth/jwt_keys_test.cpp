// JWT keys (proxy/src/auth/jwt.cpp): PEM public keys, JWK of every key type and JWKS
// documents.
#include <gtest/gtest.h>

#include "auth/jwt.hpp"
#include "jwt_fixture.hpp"

namespace wsbridge::auth {
namespace {

using namespace jwt_test;

// ---- PEM keys -----------------------------------------------------------------------------------

TEST(JwtKeyTest, PublicKeyPemRefusesWhatItCannotUse) {
  EXPECT_THROW(JwtKey::public_key_pem(""), std::invalid_argument);
  EXPECT_THROW(JwtKey::public_key_pem("not a key"), std::invalid_argument);
  EXPECT_THROW(
      JwtKey::public_key_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
      std::invalid_argument);
  // A private key is not a "PUBLIC KEY" block.
  EXPECT_THROW(JwtKey::public_key_pem(private_pem(keys().rsa.get())), std::invalid_argument);
  EXPECT_THROW(JwtKey::public_key_pem(public_pem(keygen_rsa(1024).get())), std::invalid_argument);
  EXPECT_THROW(JwtKey::public_key_pem(public_pem(keygen_ec("P-521").get())), std::invalid_argument);
  EXPECT_THROW(JwtKey::public_key_pem(public_pem(keygen_ec("secp256k1").get())),
               std::invalid_argument);
  EXPECT_THROW(JwtKey::public_key_pem(public_pem(keygen("X25519").get())), std::invalid_argument);
  EXPECT_THROW(JwtKey::public_key_pem(public_pem(keygen("ED448").get())), std::invalid_argument);
  EXPECT_THROW(JwtKey::hmac_secret(""), std::invalid_argument);
  try {
    JwtKey::public_key_pem(public_pem(keygen_rsa(1024).get()));
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("too small"), std::string::npos) << e.what();
  }
}

TEST_F(JwtTest, KeysCopyAndMove) {
  JwtKey a = verifier("ES256", "ec-1");
  JwtKey b = a;
  JwtKey c = std::move(b);
  JwtKey d = JwtKey::hmac_secret("x");
  d = c;
  JwtKey e = JwtKey::hmac_secret("y");
  e = std::move(d);
  EXPECT_EQ(a.kid(), "ec-1");
  EXPECT_EQ(e.kid(), "ec-1");
  EXPECT_EQ(verify(token("ES256"), {a, c, e}), "verified");
}

// ---- JWK and JWKS -------------------------------------------------------------------------------

TEST_F(JwtTest, JwksWithEveryKeyTypeVerifies) {
  json enc = rsa_jwk(keys().rsa.get(), "enc-1");
  enc["use"] = "enc";
  json wrap = rsa_jwk(keys().rsa.get(), "wrap-1");
  wrap["key_ops"] = json::array({"wrapKey"});
  json p521 = ec_jwk(keygen_ec("P-521").get(), "P-521", "p521-1");
  json x25519 = okp_jwk(keys().ed25519.get(), "x-1");
  x25519["crv"] = "X25519";
  json es512 = ec_jwk(keys().p256.get(), "P-256", "alg-1");
  es512["alg"] = "ES512";
  json sig_rsa = rsa_jwk(keys().rsa.get(), "rsa-1");
  sig_rsa["use"] = "sig";
  sig_rsa["key_ops"] = json::array({"verify"});
  const json jwks = {
      {"keys", json::array({sig_rsa, enc, ec_jwk(keys().p256.get(), "P-256", "ec-1"), wrap,
                            ec_jwk(keys().p384.get(), "P-384", "ec-2"), p521,
                            okp_jwk(keys().ed25519.get(), "ed-1"), x25519, es512,
                            json{{"kty", "unknown"}, {"kid", "u-1"}}, oct_jwk(kSecret, "hs-1"),
                            rsa_jwk(keygen_rsa(1024).get(), "small-1")})}};
  const std::vector<JwtKey> parsed = parse_jwks(jwks);
  std::vector<std::string> kids;
  for (const JwtKey& key : parsed) kids.push_back(key.kid());
  EXPECT_EQ(kids, (std::vector<std::string>{"rsa-1", "ec-1", "ec-2", "ed-1", "hs-1"}));

  const std::vector<std::pair<std::string, std::string>> by_kid = {
      {"RS256", "rsa-1"}, {"PS512", "rsa-1"}, {"ES256", "ec-1"},
      {"ES384", "ec-2"},  {"EdDSA", "ed-1"},  {"HS384", "hs-1"}};
  for (const auto& [alg, kid] : by_kid) {
    json h = header(alg);
    h["kid"] = kid;
    EXPECT_EQ(verify(make_token(h, claims(), signer(alg)), parsed), "verified") << alg;
    // Without a kid the JWKS is searched.
    EXPECT_EQ(verify(token(alg), parsed), "verified") << alg;
  }
  // A skipped encryption key cannot be selected.
  json h = header("RS256");
  h["kid"] = "enc-1";
  EXPECT_EQ(verify(make_token(h, claims(), signer("RS256")), parsed), "unknown kid");
  // A JWKS RSA key refuses the HS256-with-its-own-bytes trick as well.
  const std::string n_bytes = unb64url(sig_rsa.at("n").get<std::string>());
  EXPECT_EQ(
      verify(make_token(header("HS256"), claims(), SigningKey{n_bytes, nullptr}), {parsed.at(0)}),
      "no key for alg");
}

TEST_F(JwtTest, JwkFromGeneratedKeysMatchesPem) {
  EXPECT_EQ(verify(token("RS256"), {JwtKey::from_jwk(rsa_jwk(keys().rsa.get(), ""))}), "verified");
  EXPECT_EQ(verify(token("PS256"), {JwtKey::from_jwk(rsa_jwk(keys().rsa.get(), ""))}), "verified");
  EXPECT_EQ(verify(token("ES256"), {JwtKey::from_jwk(ec_jwk(keys().p256.get(), "P-256", ""))}),
            "verified");
  EXPECT_EQ(verify(token("ES384"), {JwtKey::from_jwk(ec_jwk(keys().p384.get(), "P-384", ""))}),
            "verified");
  EXPECT_EQ(verify(token("EdDSA"), {JwtKey::from_jwk(okp_jwk(keys().ed25519.get(), ""))}),
            "verified");
  EXPECT_EQ(verify(token("HS512"), {JwtKey::from_jwk(oct_jwk(kSecret, ""))}), "verified");
  // A different key's JWK does not verify.
  EXPECT_EQ(verify(token("RS256"), {JwtKey::from_jwk(rsa_jwk(keys().rsa_other.get(), ""))}),
            "bad signature");
}

TEST_F(JwtTest, JwkAlgNarrowsTheKey) {
  json jwk = rsa_jwk(keys().rsa.get(), "rsa-1");
  jwk["alg"] = "RS256";
  const JwtKey key = JwtKey::from_jwk(jwk);
  EXPECT_TRUE(key.accepts(JwtAlgorithm::kRS256));
  EXPECT_FALSE(key.accepts(JwtAlgorithm::kRS384));
  EXPECT_FALSE(key.accepts(JwtAlgorithm::kPS256));
  EXPECT_EQ(verify(token("RS256"), {key}), "verified");
  EXPECT_EQ(verify(token("PS256"), {key}), "no key for alg");
  EXPECT_EQ(verify(token("RS512"), {key}), "no key for alg");

  json oct = oct_jwk(kSecret, "");
  oct["alg"] = "HS512";
  EXPECT_EQ(verify(token("HS512"), {JwtKey::from_jwk(oct)}), "verified");
  EXPECT_EQ(verify(token("HS256"), {JwtKey::from_jwk(oct)}), "no key for alg");
}

TEST_F(JwtTest, JwkRefusesWhatItCannotUse) {
  const json rsa = rsa_jwk(keys().rsa.get(), "k");
  const json p256 = ec_jwk(keys().p256.get(), "P-256", "k");
  const json ed = okp_jwk(keys().ed25519.get(), "k");
  auto with = [](json jwk, const std::string& member, json value) {
    jwk[member] = std::move(value);
    return jwk;
  };
  auto without = [](json jwk, const std::string& member) {
    jwk.erase(member);
    return jwk;
  };
  const std::string y = unb64url(p256.at("y").get<std::string>());
  std::string y_off_curve = y;
  y_off_curve.back() = static_cast<char>(y_off_curve.back() ^ 1);

  const std::vector<json> bad = {
      json::array(),
      json("RSA"),
      json::object(),
      without(rsa, "kty"),
      with(rsa, "kty", 1),
      with(rsa, "kty", "rsa"),
      with(rsa, "use", "enc"),
      with(rsa, "use", 1),
      with(rsa, "kid", 1),
      with(rsa, "alg", "ES256"),
      with(rsa, "alg", "none"),
      with(rsa, "alg", "RSA-OAEP"),
      with(rsa, "alg", 256),
      with(rsa, "key_ops", "verify"),
      with(rsa, "key_ops", json::array({"sign"})),
      with(rsa, "key_ops", json::array({1})),
      without(rsa, "n"),
      without(rsa, "e"),
      with(rsa, "n", "AQAB="),
      with(rsa, "n", "+AAA"),
      with(rsa, "n", ""),
      with(rsa, "e", 65537),
      with(rsa, "e", b64url("\x01\x00\x00"s)),
      with(rsa, "n", b64url(std::string(256, '\xff').replace(255, 1, "\xfe"))),  // even n
      rsa_jwk(keygen_rsa(1024).get(), "small"),
      with(p256, "crv", "P-521"),
      with(p256, "crv", "secp256k1"),
      without(p256, "crv"),
      without(p256, "y"),
      with(p256, "x", b64url(unb64url(p256.at("x").get<std::string>()).substr(1))),
      with(p256, "y", b64url('\0' + y)),
      with(p256, "y", b64url(y_off_curve)),
      with(p256, "alg", "ES384"),
      with(p256, "alg", "RS256"),
      with(p256, "crv", "P-384"),
      with(ed, "crv", "Ed448"),
      with(ed, "crv", "X25519"),
      without(ed, "x"),
      with(ed, "x", b64url(std::string(31, 'a'))),
      with(ed, "alg", "ES256"),
      json{{"kty", "oct"}},
      json{{"kty", "oct"}, {"k", ""}},
      json{{"kty", "oct"}, {"k", "a=="}},
      with(oct_jwk(kSecret, ""), "alg", "RS256")};
  for (const json& jwk : bad) {
    EXPECT_THROW(JwtKey::from_jwk(jwk), std::invalid_argument) << jwk.dump();
  }
}

TEST(JwksTest, MalformedDocumentsThrow) {
  const json good = rsa_jwk(keys().rsa.get(), "k");
  json bad_n = good;
  bad_n["n"] = "not base64url!";
  json short_x = ec_jwk(keys().p256.get(), "P-256", "k");
  short_x["x"] = "AAAA";
  for (const json& jwks :
       {json::array({good}), json("keys"), json::object(), json{{"keys", good}},
        json{{"keys", nullptr}}, json{{"keys", json::array({good, 1})}},
        json{{"keys", json::array({good, json::array()})}},
        json{{"keys", json::array({good, bad_n})}}, json{{"keys", json::array({short_x})}},
        json{{"keys", json::array({json{{"kid", "no kty"}}})}}}) {
    EXPECT_THROW(parse_jwks(jwks), std::invalid_argument) << jwks.dump();
  }
  EXPECT_TRUE(parse_jwks(json{{"keys", json::array()}}).empty());
  EXPECT_EQ(parse_jwks(json{{"keys", json::array({good})}, {"other", 1}}).size(), 1u);
}

}  // namespace
}  // namespace wsbridge::auth
