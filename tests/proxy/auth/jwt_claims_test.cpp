// JWT verification (proxy/src/auth/jwt.cpp): time claims with leeway, iss, aud, sub, the
// token's size and shape, and what failures leave behind.
#include <gtest/gtest.h>

#include "auth/jwt.hpp"
#include "jwt_fixture.hpp"

namespace wsbridge::auth {
namespace {

using namespace jwt_test;

// ---- time claims --------------------------------------------------------------------------------

TEST_F(JwtTest, ExpWithLeeway) {
  const std::vector<JwtKey> k = {verifier("HS256")};
  json c = claims();
  c["exp"] = kNowSeconds - 30;  // now == exp + leeway: still accepted
  EXPECT_EQ(verify(token("HS256", c), k), "verified");
  c["exp"] = kNowSeconds - 31;
  EXPECT_EQ(verify(token("HS256", c), k), "expired");
  c["exp"] = kNowSeconds - 30.5;  // NumericDate may be fractional
  EXPECT_EQ(verify(token("HS256", c), k), "expired");
  c["exp"] = kNowSeconds - 30;
  EXPECT_EQ(verify(token("HS256", c), k, policy(), kNow + std::chrono::milliseconds(1)), "expired");

  JwtPolicy strict = policy();
  strict.leeway = std::chrono::seconds(0);
  c["exp"] = kNowSeconds;
  EXPECT_EQ(verify(token("HS256", c), k, strict), "verified");
  c["exp"] = kNowSeconds - 1;
  EXPECT_EQ(verify(token("HS256", c), k, strict), "expired");
  c["exp"] = -1;
  EXPECT_EQ(verify(token("HS256", c), k), "expired");
}

TEST_F(JwtTest, NbfWithLeeway) {
  const std::vector<JwtKey> k = {verifier("HS256")};
  json c = claims();
  c["nbf"] = kNowSeconds + 30;  // now + leeway == nbf: accepted
  EXPECT_EQ(verify(token("HS256", c), k), "verified");
  c["nbf"] = kNowSeconds + 31;
  EXPECT_EQ(verify(token("HS256", c), k), "not yet valid");
  c["nbf"] = kNowSeconds + 30.25;
  EXPECT_EQ(verify(token("HS256", c), k), "not yet valid");
  c["nbf"] = kNowSeconds - 3600;
  EXPECT_EQ(verify(token("HS256", c), k), "verified");
}

TEST_F(JwtTest, IatWithLeeway) {
  const std::vector<JwtKey> k = {verifier("HS256")};
  json c = claims();
  c["iat"] = kNowSeconds + 30;
  EXPECT_EQ(verify(token("HS256", c), k), "verified");
  c["iat"] = kNowSeconds + 31;
  EXPECT_EQ(verify(token("HS256", c), k), "issued in the future");
  c["iat"] = 0;
  EXPECT_EQ(verify(token("HS256", c), k), "verified");
  c.erase("iat");
  EXPECT_EQ(verify(token("HS256", c), k), "verified");
}

TEST_F(JwtTest, RequireExp) {
  const std::vector<JwtKey> k = {verifier("HS256")};
  json c = claims();
  c.erase("exp");
  EXPECT_EQ(verify(token("HS256", c), k), "exp missing");
  JwtPolicy lax = policy();
  lax.require_exp = false;
  const Result result = verify_jwt(token("HS256", c), k, lax, kNow);
  ASSERT_EQ(outcome(result), "verified");
  EXPECT_FALSE(std::get<VerifiedToken>(result).expires_at.has_value());
}

TEST_F(JwtTest, NonNumericTimeClaimsRefused) {
  const std::vector<JwtKey> k = {verifier("HS256")};
  JwtPolicy lax = policy();
  lax.require_exp = false;
  for (const json& bad :
       {json("1700000600"), json(true), json(nullptr), json::array({1}), json::object()}) {
    for (const char* name : {"exp", "nbf", "iat"}) {
      json c = claims();
      c[name] = bad;
      EXPECT_EQ(verify(token("HS256", c), k, lax), std::string(name) + " not a number")
          << name << "=" << bad.dump();
    }
  }
}

TEST_F(JwtTest, FarFutureExpSaturates) {
  const std::vector<JwtKey> k = {verifier("HS256")};
  for (const json& exp : {json(1e300), json(std::numeric_limits<std::uint64_t>::max()),
                          json(std::int64_t{1} << 62)}) {
    json c = claims();
    c["exp"] = exp;
    const Result result = verify_jwt(token("HS256", c), k, policy(), kNow);
    ASSERT_EQ(outcome(result), "verified") << exp.dump();
    EXPECT_EQ(std::get<VerifiedToken>(result).expires_at, Clock::time_point::max());
  }
}

// ---- iss, aud, sub ------------------------------------------------------------------------------

TEST_F(JwtTest, Issuer) {
  const std::vector<JwtKey> k = {verifier("ES256")};
  json c = claims();
  EXPECT_EQ(verify(token("ES256", c), k), "verified");
  c["iss"] = kIssuer + "/";
  EXPECT_EQ(verify(token("ES256", c), k), "issuer mismatch");
  c["iss"] = json::array({kIssuer});
  EXPECT_EQ(verify(token("ES256", c), k), "issuer mismatch");
  c.erase("iss");
  EXPECT_EQ(verify(token("ES256", c), k), "issuer mismatch");
  JwtPolicy any_issuer = policy();
  any_issuer.issuer.reset();
  EXPECT_EQ(verify(token("ES256", c), k, any_issuer), "verified");
}

TEST_F(JwtTest, AudienceStringOrArray) {
  const std::vector<JwtKey> k = {verifier("HS256")};
  JwtPolicy p = policy();
  p.audiences = {"other", kAudience};
  json c = claims();
  EXPECT_EQ(verify(token("HS256", c), k, p), "verified");
  c["aud"] = json::array({"x", kAudience});
  EXPECT_EQ(verify(token("HS256", c), k, p), "verified");
  c["aud"] = json::array({"other"});
  EXPECT_EQ(verify(token("HS256", c), k, p), "verified");
  c["aud"] = json::array({"x", "y"});
  EXPECT_EQ(verify(token("HS256", c), k, p), "audience mismatch");
  c["aud"] = json::array();
  EXPECT_EQ(verify(token("HS256", c), k, p), "audience mismatch");
  c["aud"] = "WSBRIDGE";  // case-sensitive
  EXPECT_EQ(verify(token("HS256", c), k, p), "audience mismatch");
  c["aud"] = json::array({1, kAudience});
  EXPECT_EQ(verify(token("HS256", c), k, p), "aud not a string or array of strings");
  c["aud"] = 1;
  EXPECT_EQ(verify(token("HS256", c), k, p), "aud not a string or array of strings");
  c.erase("aud");
  EXPECT_EQ(verify(token("HS256", c), k, p), "aud missing");
  p.audiences.clear();  // no audience required: aud is not looked at
  EXPECT_EQ(verify(token("HS256", c), k, p), "verified");
  c["aud"] = 1;
  EXPECT_EQ(verify(token("HS256", c), k, p), "verified");
}

TEST_F(JwtTest, Subject) {
  const std::vector<JwtKey> k = {verifier("HS256")};
  json c = claims();
  c.erase("sub");
  const Result result = verify_jwt(token("HS256", c), k, policy(), kNow);
  ASSERT_EQ(outcome(result), "verified");
  EXPECT_EQ(std::get<VerifiedToken>(result).subject, "");
  c["sub"] = 42;
  EXPECT_EQ(verify(token("HS256", c), k), "sub not a string");
}

// ---- size and shape -----------------------------------------------------------------------------

TEST_F(JwtTest, MaxTokenBytes) {
  const std::string t = token("RS256");
  JwtPolicy p = policy();
  p.max_token_bytes = t.size();
  EXPECT_EQ(verify(t, {verifier("RS256")}, p), "verified");
  p.max_token_bytes = t.size() - 1;
  EXPECT_EQ(verify(t, {verifier("RS256")}, p), "token too large");
  // Checked before anything else is looked at.
  EXPECT_EQ(verify(std::string(8193, 'A'), {verifier("RS256")}), "token too large");
  json big = claims();
  big["pad"] = std::string(9000, 'x');
  EXPECT_EQ(verify(token("HS256", big), {verifier("HS256")}), "token too large");
}

TEST_F(JwtTest, WrongNumberOfParts) {
  const std::string t = token("HS256");
  const std::vector<JwtKey> k = {verifier("HS256")};
  const std::vector<std::string> parts = parts_of(t);
  for (const std::string& bad :
       {""s, "."s, "abc"s, parts[0] + "." + parts[1], t + ".", t + "." + parts[2], "." + t,
        parts[0] + ".." + parts[1] + "." + parts[2]}) {
    EXPECT_EQ(verify(bad, k), "malformed token: not three parts") << bad;
  }
  EXPECT_EQ(verify("..", k), "malformed header");
}

TEST_F(JwtTest, MalformedBase64UrlRefused) {
  const std::string t = token("HS256");
  const std::vector<JwtKey> k = {verifier("HS256")};
  const std::vector<std::string> parts = parts_of(t);
  std::vector<std::string> bad;
  for (std::size_t i = 0; i < 3; ++i) {
    std::vector<std::string> p = parts;
    p[i] += "=";  // padding
    bad.push_back(join(p));
    p = parts;
    p[i] += "==";
    bad.push_back(join(p));
    p = parts;
    p[i][1] = '+';  // standard-alphabet characters
    bad.push_back(join(p));
    p = parts;
    p[i][1] = '/';
    bad.push_back(join(p));
    p = parts;
    p[i].insert(2, " ");
    bad.push_back(join(p));
    p = parts;
    while (p[i].size() % 4 != 1) p[i] += "A";  // impossible length
    bad.push_back(join(p));
  }
  bad.push_back(t + "\n");
  bad.push_back(" " + t);
  // The signature with non-zero unused bits: same bytes, different text. Refusing it keeps
  // signatures non-malleable.
  {
    std::vector<std::string> p = parts;
    ASSERT_EQ(p[2].size() % 4, 3u);  // 32 bytes -> 43 characters, 2 unused bits
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    p[2].back() = alphabet[alphabet.find(p[2].back()) | 1];
    ASSERT_EQ(unb64url(p[2]), unb64url(parts[2]));
    bad.push_back(join(p));
  }
  for (const std::string& b : bad) {
    EXPECT_EQ(verify(b, k), "malformed token: bad base64url") << b;
  }
}

TEST_F(JwtTest, HeaderMustBeAJsonObject) {
  const std::vector<JwtKey> k = {verifier("HS256")};
  for (const std::string& text :
       {"[]"s, R"(["alg","HS256"])"s, R"("HS256")"s, "123"s, "null"s, "{"s, R"({"alg":"HS256")"s,
        R"({"alg":"HS256"}x)"s, ""s, "\xff\xfe"s, "{\"alg\":\"HS256\",\"x\":\"\xc3\"}"s}) {
    EXPECT_EQ(verify(token_from_text(text, claims().dump(), "HS256", signer("HS256")), k),
              "malformed header")
        << text;
  }
}

TEST_F(JwtTest, PayloadMustBeAJsonObject) {
  const std::vector<JwtKey> k = {verifier("HS256")};
  for (const std::string& text : {"[]"s, "[1,2]"s, R"("claims")"s, "42"s, "null"s, "true"s, "{"s,
                                  "not json"s, ""s, "\xff"s}) {
    EXPECT_EQ(verify(token_from_text(header("HS256").dump(), text, "HS256", signer("HS256")), k),
              "malformed payload")
        << text;
  }
}

TEST_F(JwtTest, EcdsaSignatureMustBeRawRAndSOfTheRightLength) {
  const std::vector<std::string> parts = parts_of(token("ES256"));
  const std::string raw = unb64url(parts[2]);
  ASSERT_EQ(raw.size(), 64u);
  const std::vector<JwtKey> k = {verifier("ES256")};
  EXPECT_EQ(verify(join(parts), k), "verified");

  // The DER form OpenSSL would produce for the same R and S.
  BnPtr r(BN_bin2bn(u8(raw), 32, nullptr));
  BnPtr s(BN_bin2bn(u8(raw) + 32, 32, nullptr));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  ASSERT_EQ(ECDSA_SIG_set0(sig.get(), r.get(), s.get()), 1);
  static_cast<void>(r.release());
  static_cast<void>(s.release());
  unsigned char* der = nullptr;
  const int der_len = i2d_ECDSA_SIG(sig.get(), &der);
  ASSERT_GT(der_len, 0);
  const std::string der_sig(reinterpret_cast<const char*>(der), static_cast<std::size_t>(der_len));
  OPENSSL_free(der);

  for (const std::string& bad :
       {raw.substr(0, 63), raw + '\0', '\0' + raw, raw + raw.substr(0, 32), raw.substr(0, 32),
        der_sig, raw.substr(32) + raw.substr(0, 32), std::string(64, '\0'), ""s}) {
    EXPECT_EQ(verify(join({parts[0], parts[1], b64url(bad)}), k), "bad signature") << bad.size();
  }
  // ES384 wants 96 bytes.
  const std::vector<std::string> p384 = parts_of(token("ES384"));
  EXPECT_EQ(verify(join({p384[0], p384[1], b64url(unb64url(p384[2]).substr(0, 64))}),
                   {verifier("ES384")}),
            "bad signature");
}
// ---- hygiene ------------------------------------------------------------------------------------

TEST_F(JwtTest, ReasonsNeverContainTheToken) {
  const std::string good = token("RS256");
  const std::vector<std::string> parts = parts_of(good);
  json expired = claims();
  expired["exp"] = 1;
  std::vector<std::string> failing = {
      join({parts[0], parts[1], parts[2].substr(0, 40) + "AAAA" + parts[2].substr(44)}),
      token("RS256", expired), good + "=", parts[1] + "." + parts[0] + "." + parts[2]};
  for (const std::string& t : failing) {
    const std::string reason = verify(t, {verifier("RS256")});
    ASSERT_NE(reason, "verified");
    for (const std::string& part : parts_of(t + "..")) {
      if (part.size() >= 8) {
        EXPECT_EQ(reason.find(part), std::string::npos) << reason;
      }
    }
  }
}

TEST_F(JwtTest, OpenSslErrorQueueLeftAsFound) {
  // Failed verifications must not leave errors behind for the TLS code on the same thread, nor
  // remove ones that were already queued.
  ERR_clear_error();
  EXPECT_EQ(verify(token("ES256"), {verifier("ES384"), verifier("RS256")}), "no key for alg");
  std::vector<std::string> parts = parts_of(token("RS256"));
  parts[2] = b64url(std::string(256, '\x01'));
  EXPECT_EQ(verify(join(parts), {verifier("RS256")}), "bad signature");
  parts = parts_of(token("ES256"));
  parts[2] = b64url(std::string(64, '\0'));
  EXPECT_EQ(verify(join(parts), {verifier("ES256")}), "bad signature");
  EXPECT_THROW(JwtKey::public_key_pem("junk"), std::invalid_argument);
  EXPECT_THROW(JwtKey::from_jwk(json{{"kty", "EC"},
                                     {"crv", "P-256"},
                                     {"x", b64url(std::string(32, 'a'))},
                                     {"y", b64url(std::string(32, 'b'))}}),
               std::invalid_argument);
  EXPECT_EQ(ERR_peek_error(), 0u);

  ERR_raise(ERR_LIB_USER, 1);
  const unsigned long queued = ERR_peek_last_error();
  EXPECT_EQ(verify(join(parts), {verifier("ES256")}), "bad signature");
  EXPECT_EQ(ERR_peek_last_error(), queued);
  ERR_clear_error();
}

}  // namespace
}  // namespace wsbridge::auth
