// JWT verification against real tokens: keys are generated with OpenSSL at test time and tokens
// are signed by a small test-only signer (also OpenSSL), independent of the code under test. The
// RFC 7515 / RFC 8037 examples anchor the encoding and the signature formats.
#include <gtest/gtest.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "auth/jwt.hpp"

namespace wsbridge::auth {
namespace {

using nlohmann::json;
using Clock = std::chrono::system_clock;
using Result = std::variant<VerifiedToken, JwtError>;
using namespace std::string_literals;

// ---- OpenSSL helpers (test only) --------------------------------------------------------------

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;

void check(bool ok, const char* what) {
  if (!ok) {
    ERR_clear_error();
    throw std::runtime_error(std::string("test OpenSSL step failed: ") + what);
  }
}

const unsigned char* u8(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// base64url through OpenSSL's standard base64 and an alphabet swap, so that tokens are not built
// with the encoder under test.
std::string b64url(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), u8(bytes),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::string unb64url(std::string_view text) {
  std::string s(text);
  for (char& c : s) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  const std::size_t pad = (4 - s.size() % 4) % 4;
  s.append(pad, '=');
  std::string out(s.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), u8(s),
                                static_cast<int>(s.size()));
  check(n >= 0, "EVP_DecodeBlock");
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

PkeyPtr keygen_rsa(std::size_t bits) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
  check(key != nullptr, "RSA keygen");
  return key;
}

PkeyPtr keygen_ec(const char* curve) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
  check(key != nullptr, "EC keygen");
  return key;
}

PkeyPtr keygen(const char* type) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, type));
  check(key != nullptr, "keygen");
  return key;
}

std::string drain(BIO* bio) {
  std::string out;
  char buf[1024];
  int n = 0;
  while ((n = BIO_read(bio, buf, sizeof(buf))) > 0) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

std::string public_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(bio && PEM_write_bio_PUBKEY(bio.get(), key) == 1, "PEM_write_bio_PUBKEY");
  return drain(bio.get());
}

std::string private_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(bio && PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
  return drain(bio.get());
}

// ---- JWK members from generated keys ----------------------------------------------------------

std::string bn_param(EVP_PKEY* key, const char* name) {
  BIGNUM* raw = nullptr;
  check(EVP_PKEY_get_bn_param(key, name, &raw) == 1, "EVP_PKEY_get_bn_param");
  const BnPtr bn(raw);
  std::string out(static_cast<std::size_t>(BN_num_bytes(bn.get())), '\0');
  BN_bn2bin(bn.get(), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

json rsa_jwk(EVP_PKEY* key, const std::string& kid) {
  return {{"kty", "RSA"},
          {"kid", kid},
          {"n", b64url(bn_param(key, OSSL_PKEY_PARAM_RSA_N))},
          {"e", b64url(bn_param(key, OSSL_PKEY_PARAM_RSA_E))}};
}

json ec_jwk(EVP_PKEY* key, const std::string& crv, const std::string& kid) {
  unsigned char point[1 + 2 * 66];
  std::size_t len = 0;
  check(EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                        sizeof(point), &len) == 1,
        "encoded EC point");
  check(len % 2 == 1 && point[0] == 0x04, "uncompressed EC point");
  const std::size_t half = (len - 1) / 2;
  const std::string_view bytes(reinterpret_cast<const char*>(point), len);
  return {{"kty", "EC"},
          {"crv", crv},
          {"kid", kid},
          {"x", b64url(bytes.substr(1, half))},
          {"y", b64url(bytes.substr(1 + half, half))}};
}

json okp_jwk(EVP_PKEY* key, const std::string& kid) {
  unsigned char raw[32];
  std::size_t len = sizeof(raw);
  check(EVP_PKEY_get_raw_public_key(key, raw, &len) == 1 && len == 32, "raw Ed25519 key");
  return {{"kty", "OKP"},
          {"crv", "Ed25519"},
          {"kid", kid},
          {"x", b64url(std::string_view(reinterpret_cast<const char*>(raw), len))}};
}

json oct_jwk(std::string_view secret, const std::string& kid) {
  return {{"kty", "oct"}, {"kid", kid}, {"k", b64url(secret)}};
}

// ---- test-only signer ---------------------------------------------------------------------------

struct SigningKey {
  std::string secret;        // HS*
  EVP_PKEY* pkey = nullptr;  // RS*, PS*, ES*, EdDSA
};

std::string digest_for(std::string_view alg) {
  if (alg == "EdDSA") return "";
  return "SHA" + std::string(alg.substr(2));  // HS256 -> SHA256, ...
}

std::string sign(std::string_view alg, const SigningKey& key, std::string_view input) {
  const std::string digest = digest_for(alg);
  if (alg.starts_with("HS")) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    std::size_t mac_len = 0;
    check(EVP_Q_mac(nullptr, "HMAC", nullptr, digest.c_str(), nullptr, key.secret.data(),
                    key.secret.size(), u8(input), input.size(), mac, sizeof(mac),
                    &mac_len) != nullptr,
          "EVP_Q_mac");
    return std::string(reinterpret_cast<const char*>(mac), mac_len);
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  check(ctx && EVP_DigestSignInit_ex(ctx.get(), &pctx, digest.empty() ? nullptr : digest.c_str(),
                                     nullptr, nullptr, key.pkey, nullptr) == 1,
        "EVP_DigestSignInit_ex");
  if (alg.starts_with("PS")) {
    check(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
              EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
              EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, digest.c_str(), nullptr) == 1,
          "PSS parameters");
  }
  std::size_t len = 0;
  check(EVP_DigestSign(ctx.get(), nullptr, &len, u8(input), input.size()) == 1, "sign size");
  std::string sig(len, '\0');
  check(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, u8(input),
                       input.size()) == 1,
        "EVP_DigestSign");
  sig.resize(len);
  if (!alg.starts_with("ES")) return sig;

  // OpenSSL produces DER; JWS wants fixed-width big-endian R || S.
  const int width = alg == "ES256" ? 32 : 48;
  const unsigned char* p = u8(sig);
  EcdsaSigPtr der(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size())));
  check(der != nullptr, "d2i_ECDSA_SIG");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(der.get(), &r, &s);
  std::string raw(static_cast<std::size_t>(2 * width), '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  check(BN_bn2binpad(r, out, width) == width && BN_bn2binpad(s, out + width, width) == width,
        "BN_bn2binpad");
  return raw;
}

std::string token_from_text(std::string_view header, std::string_view payload, std::string_view alg,
                            const SigningKey& key) {
  const std::string input = b64url(header) + "." + b64url(payload);
  return input + "." + b64url(sign(alg, key, input));
}

std::string make_token(const json& header, const json& claims, const SigningKey& key) {
  return token_from_text(header.dump(), claims.dump(), header.at("alg").get<std::string>(), key);
}

// Splits a compact token into its three parts (the tests only call it on well-formed ones).
std::vector<std::string> parts_of(const std::string& token) {
  const std::size_t a = token.find('.');
  const std::size_t b = token.find('.', a + 1);
  return {token.substr(0, a), token.substr(a + 1, b - a - 1), token.substr(b + 1)};
}

std::string join(const std::vector<std::string>& parts) {
  return parts.at(0) + "." + parts.at(1) + "." + parts.at(2);
}

// "verified" or the error reason, so that EXPECT_EQ prints the reason when a test fails.
std::string outcome(const Result& result) {
  if (const auto* error = std::get_if<JwtError>(&result)) return error->reason;
  return "verified";
}

// ---- shared keys and defaults -------------------------------------------------------------------

struct TestKeys {
  PkeyPtr rsa = keygen_rsa(2048);
  PkeyPtr rsa_other = keygen_rsa(2048);
  PkeyPtr p256 = keygen_ec("P-256");
  PkeyPtr p384 = keygen_ec("P-384");
  PkeyPtr ed25519 = keygen("ED25519");
  PkeyPtr ed25519_other = keygen("ED25519");
};

// Generated once: RSA key generation dominates the run time otherwise.
const TestKeys& keys() {
  static const TestKeys k;
  return k;
}

constexpr std::int64_t kNowSeconds = 1'700'000'000;
const Clock::time_point kNow{std::chrono::seconds(kNowSeconds)};
const std::string kSecret = "0123456789abcdef0123456789abcdef-wsbridge-test";
const std::string kIssuer = "https://issuer.example";
const std::string kAudience = "wsbridge";

const std::vector<std::string> kAllAlgorithms = {"HS256", "HS384", "HS512", "RS256",
                                                 "RS384", "RS512", "PS256", "PS384",
                                                 "PS512", "ES256", "ES384", "EdDSA"};

class JwtTest : public ::testing::Test {
 protected:
  static JwtPolicy policy() {
    JwtPolicy p;
    p.issuer = kIssuer;
    p.audiences = {kAudience};
    return p;
  }

  static json claims() {
    return {{"iss", kIssuer},
            {"sub", "alice"},
            {"aud", kAudience},
            {"iat", kNowSeconds},
            {"exp", kNowSeconds + 600}};
  }

  static json header(const std::string& alg) { return {{"alg", alg}, {"typ", "JWT"}}; }

  // The key that signs `alg` in these tests.
  static SigningKey signer(std::string_view alg) {
    if (alg.starts_with("HS")) return {kSecret, nullptr};
    if (alg.starts_with("RS") || alg.starts_with("PS")) return {"", keys().rsa.get()};
    if (alg == "ES256") return {"", keys().p256.get()};
    if (alg == "ES384") return {"", keys().p384.get()};
    return {"", keys().ed25519.get()};
  }

  // The matching verification key, read the way a deployment would (PEM, or a secret).
  static JwtKey verifier(std::string_view alg, std::string kid = "") {
    if (alg.starts_with("HS")) return JwtKey::hmac_secret(kSecret, std::move(kid));
    return JwtKey::public_key_pem(public_pem(signer(alg).pkey), std::move(kid));
  }

  static std::string token(const std::string& alg, const json& payload = claims()) {
    return make_token(header(alg), payload, signer(alg));
  }

  static std::string verify(const std::string& token, const std::vector<JwtKey>& key_set,
                            const JwtPolicy& p = policy(), Clock::time_point now = kNow) {
    return outcome(verify_jwt(token, key_set, p, now));
  }
};

// ---- algorithm names and key binding ------------------------------------------------------------

TEST(JwtAlgorithmTest, ParsesExactlyTheAcceptedNames) {
  EXPECT_EQ(parse_jwt_algorithm("HS256"), JwtAlgorithm::kHS256);
  EXPECT_EQ(parse_jwt_algorithm("RS384"), JwtAlgorithm::kRS384);
  EXPECT_EQ(parse_jwt_algorithm("PS512"), JwtAlgorithm::kPS512);
  EXPECT_EQ(parse_jwt_algorithm("ES384"), JwtAlgorithm::kES384);
  EXPECT_EQ(parse_jwt_algorithm("EdDSA"), JwtAlgorithm::kEdDSA);
  for (const std::string& name : kAllAlgorithms) {
    EXPECT_TRUE(parse_jwt_algorithm(name).has_value()) << name;
  }
  for (const char* name : {"none", "None", "NONE", "", "hs256", "HS256 ", "ES512", "RS1", "Ed25519",
                           "EDDSA", "HS1024"}) {
    EXPECT_EQ(parse_jwt_algorithm(name), std::nullopt) << name;
  }
}

TEST_F(JwtTest, KeysAcceptOnlyTheirFamily) {
  const JwtKey hmac = JwtKey::hmac_secret(kSecret);
  const JwtKey rsa = JwtKey::public_key_pem(public_pem(keys().rsa.get()));
  const JwtKey p256 = JwtKey::public_key_pem(public_pem(keys().p256.get()));
  const JwtKey p384 = JwtKey::public_key_pem(public_pem(keys().p384.get()));
  const JwtKey ed = JwtKey::public_key_pem(public_pem(keys().ed25519.get()));
  for (const std::string& name : kAllAlgorithms) {
    const JwtAlgorithm alg = *parse_jwt_algorithm(name);
    EXPECT_EQ(hmac.accepts(alg), name.starts_with("HS")) << name;
    EXPECT_EQ(rsa.accepts(alg), name.starts_with("RS") || name.starts_with("PS")) << name;
    EXPECT_EQ(p256.accepts(alg), name == "ES256") << name;
    EXPECT_EQ(p384.accepts(alg), name == "ES384") << name;
    EXPECT_EQ(ed.accepts(alg), name == "EdDSA") << name;
  }
}

// ---- every algorithm ----------------------------------------------------------------------------

TEST_F(JwtTest, EveryAlgorithmVerifies) {
  for (const std::string& alg : kAllAlgorithms) {
    const Result result = verify_jwt(token(alg), {verifier(alg)}, policy(), kNow);
    ASSERT_EQ(outcome(result), "verified") << alg;
    const auto& verified = std::get<VerifiedToken>(result);
    EXPECT_EQ(verified.header.at("alg"), alg);
    EXPECT_EQ(verified.claims, claims()) << alg;
    EXPECT_EQ(verified.subject, "alice");
    ASSERT_TRUE(verified.expires_at.has_value());
    EXPECT_EQ(*verified.expires_at, kNow + std::chrono::seconds(600));
  }
}

TEST_F(JwtTest, TamperedPayloadFails) {
  for (const std::string& alg : kAllAlgorithms) {
    std::vector<std::string> parts = parts_of(token(alg));
    json forged = claims();
    forged["sub"] = "mallory";
    parts[1] = b64url(forged.dump());
    EXPECT_EQ(verify(join(parts), {verifier(alg)}), "bad signature") << alg;
  }
}

TEST_F(JwtTest, TamperedHeaderFails) {
  for (const std::string& alg : kAllAlgorithms) {
    std::vector<std::string> parts = parts_of(token(alg));
    json forged = header(alg);
    forged["typ"] = "at+jwt";
    parts[0] = b64url(forged.dump());
    EXPECT_EQ(verify(join(parts), {verifier(alg)}), "bad signature") << alg;
  }
}

TEST_F(JwtTest, TamperedSignatureFails) {
  for (const std::string& alg : kAllAlgorithms) {
    const std::vector<std::string> parts = parts_of(token(alg));
    const std::string signature = unb64url(parts[2]);
    for (const std::size_t at : {std::size_t{0}, signature.size() / 2, signature.size() - 1}) {
      std::string flipped = signature;
      flipped[at] = static_cast<char>(flipped[at] ^ 0x01);
      EXPECT_EQ(verify(join({parts[0], parts[1], b64url(flipped)}), {verifier(alg)}),
                "bad signature")
          << alg << " byte " << at;
    }
    EXPECT_EQ(verify(join({parts[0], parts[1], ""}), {verifier(alg)}), "bad signature") << alg;
  }
}

TEST_F(JwtTest, WrongKeyOfTheRightTypeFails) {
  EXPECT_EQ(verify(token("HS256"), {JwtKey::hmac_secret(kSecret + "x")}), "bad signature");
  EXPECT_EQ(verify(token("RS256"), {JwtKey::public_key_pem(public_pem(keys().rsa_other.get()))}),
            "bad signature");
  EXPECT_EQ(verify(token("PS256"), {JwtKey::public_key_pem(public_pem(keys().rsa_other.get()))}),
            "bad signature");
  EXPECT_EQ(verify(token("ES256"), {JwtKey::public_key_pem(public_pem(keygen_ec("P-256").get()))}),
            "bad signature");
  EXPECT_EQ(
      verify(token("EdDSA"), {JwtKey::public_key_pem(public_pem(keys().ed25519_other.get()))}),
      "bad signature");
}

TEST_F(JwtTest, RsaPaddingsAreNotInterchangeable) {
  // An RS256 (PKCS #1 v1.5) signature presented as PS256 and the other way round.
  for (const auto& [signed_as, claimed_as] :
       {std::pair{"RS256"s, "PS256"s}, std::pair{"PS256"s, "RS256"s}, std::pair{"RS256"s, "RS384"s},
        std::pair{"PS384"s, "PS512"s}}) {
    const std::string input = b64url(header(claimed_as).dump()) + "." + b64url(claims().dump());
    const std::string forged = input + "." + b64url(sign(signed_as, signer(signed_as), input));
    EXPECT_EQ(verify(forged, {verifier("RS256")}), "bad signature") << signed_as << claimed_as;
  }
}

TEST_F(JwtTest, PssNeedsSaltOfHashLengthAndMatchingMgf1) {
  // RFC 7518 section 3.5 fixes the PSS parameters; a signature made with others is refused even
  // though it is a valid RSASSA-PSS signature.
  auto pss_token = [](int salt_len, const char* mgf1) {
    const std::string input = b64url(header("PS256").dump()) + "." + b64url(claims().dump());
    MdCtxPtr ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    check(ctx &&
              EVP_DigestSignInit_ex(ctx.get(), &pctx, "SHA256", nullptr, nullptr, keys().rsa.get(),
                                    nullptr) == 1 &&
              EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
              EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt_len) == 1 &&
              EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, mgf1, nullptr) == 1,
          "PSS sign setup");
    std::string sig(512, '\0');
    std::size_t len = sig.size();
    check(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, u8(input),
                         input.size()) == 1,
          "PSS sign");
    sig.resize(len);
    return input + "." + b64url(sig);
  };
  EXPECT_EQ(verify(pss_token(32, "SHA256"), {verifier("PS256")}), "verified");
  EXPECT_EQ(verify(pss_token(RSA_PSS_SALTLEN_MAX, "SHA256"), {verifier("PS256")}), "bad signature");
  EXPECT_EQ(verify(pss_token(20, "SHA256"), {verifier("PS256")}), "bad signature");
  EXPECT_EQ(verify(pss_token(0, "SHA256"), {verifier("PS256")}), "bad signature");
  EXPECT_EQ(verify(pss_token(32, "SHA1"), {verifier("PS256")}), "bad signature");
}

// ---- alg header ---------------------------------------------------------------------------------

TEST_F(JwtTest, AlgNoneRefusedInAnyCase) {
  const std::vector<JwtKey> all = {verifier("HS256"), verifier("RS256"), verifier("ES256"),
                                   verifier("EdDSA")};
  for (const char* none : {"none", "None", "NONE", "nOnE"}) {
    const std::string input = b64url(json{{"alg", none}}.dump()) + "." + b64url(claims().dump());
    EXPECT_EQ(verify(input + ".", all), "alg none refused") << none;
    // A signature part does not help either.
    EXPECT_EQ(verify(input + "." + b64url(sign("HS256", signer("HS256"), input)), all),
              "alg none refused")
        << none;
  }
}

TEST_F(JwtTest, MissingOrUnknownAlgRefused) {
  const std::vector<JwtKey> all = {verifier("HS256"), verifier("RS256")};
  EXPECT_EQ(
      verify(token_from_text(R"({"typ":"JWT"})", claims().dump(), "HS256", signer("HS256")), all),
      "alg missing");
  EXPECT_EQ(
      verify(token_from_text(R"({"alg":256})", claims().dump(), "HS256", signer("HS256")), all),
      "alg not a string");
  EXPECT_EQ(
      verify(token_from_text(R"({"alg":null})", claims().dump(), "HS256", signer("HS256")), all),
      "alg not a string");
  for (const char* alg : {"hs256", "HS256 ", "ES512", "RS1", "HS1024", "Ed25519", ""}) {
    const std::string text = json{{"alg", alg}}.dump();
    EXPECT_EQ(verify(token_from_text(text, claims().dump(), "HS256", signer("HS256")), all),
              "alg not supported")
        << alg;
  }
}

TEST_F(JwtTest, CritRefused) {
  for (const json& crit : {json::array({"b64"}), json::array(), json("exp")}) {
    json h = header("HS256");
    h["crit"] = crit;
    h["b64"] = false;
    EXPECT_EQ(verify(make_token(h, claims(), signer("HS256")), {verifier("HS256")}),
              "crit refused");
  }
}

// ---- algorithm confusion ------------------------------------------------------------------------

TEST_F(JwtTest, HmacWithPublicKeyPemAsSecretRefused) {
  // The classic attack: sign HS256 with the server's public key bytes as the HMAC secret and hope
  // the verifier feeds the same bytes to HMAC. Each PEM-loaded or JWK key refuses HS*.
  for (EVP_PKEY* pkey : {keys().rsa.get(), keys().p256.get(), keys().ed25519.get()}) {
    const std::string pem = public_pem(pkey);
    for (const char* alg : {"HS256", "HS384", "HS512"}) {
      const std::string forged = make_token(header(alg), claims(), SigningKey{pem, nullptr});
      EXPECT_EQ(verify(forged, {JwtKey::public_key_pem(pem)}), "no key for alg") << alg;
    }
  }
  const std::string pem = public_pem(keys().rsa.get());
  const std::string forged = make_token(header("HS256"), claims(), SigningKey{pem, nullptr});
  EXPECT_EQ(verify(forged, {JwtKey::from_jwk(rsa_jwk(keys().rsa.get(), ""))}), "no key for alg");
  // Sanity: the same bytes configured as an HMAC secret would verify, so the refusal above is the
  // key binding at work and not a broken token.
  EXPECT_EQ(verify(forged, {JwtKey::hmac_secret(pem)}), "verified");
}

TEST_F(JwtTest, KeysDoNotVerifyOtherFamilies) {
  const JwtKey rsa = verifier("RS256");
  const JwtKey p256 = verifier("ES256");
  const JwtKey p384 = verifier("ES384");
  const JwtKey ed = verifier("EdDSA");
  const JwtKey hmac = verifier("HS256");
  EXPECT_EQ(verify(token("ES256"), {rsa}), "no key for alg");
  EXPECT_EQ(verify(token("ES256"), {p384}), "no key for alg");
  EXPECT_EQ(verify(token("ES384"), {p256}), "no key for alg");
  EXPECT_EQ(verify(token("RS256"), {p256, ed, hmac}), "no key for alg");
  EXPECT_EQ(verify(token("EdDSA"), {rsa, p256, hmac}), "no key for alg");
  EXPECT_EQ(verify(token("HS256"), {rsa, p256, p384, ed}), "no key for alg");
  // Among mixed keys, only the right family is tried and it verifies.
  EXPECT_EQ(verify(token("ES256"), {rsa, p384, ed, hmac, p256}), "verified");
}

TEST_F(JwtTest, EmbeddedJwkHeaderIgnored) {
  // A token carrying its own key ("jwk") must still be checked against the configured keys only.
  json h = header("EdDSA");
  h["jwk"] = okp_jwk(keys().ed25519_other.get(), "");
  const std::string forged = make_token(h, claims(), SigningKey{"", keys().ed25519_other.get()});
  EXPECT_EQ(verify(forged, {verifier("EdDSA")}), "bad signature");
}

// ---- kid ----------------------------------------------------------------------------------------

TEST_F(JwtTest, KidSelectsTheKey) {
  const std::vector<JwtKey> key_set = {JwtKey::hmac_secret("first secret 0123456789abcdef", "a"),
                                       JwtKey::hmac_secret("second secret 0123456789abcde", "b")};
  const SigningKey second{"second secret 0123456789abcde", nullptr};
  json h = header("HS256");
  h["kid"] = "b";
  EXPECT_EQ(verify(make_token(h, claims(), second), key_set), "verified");
  // kid "a" restricts the search to key a, which did not sign it.
  h["kid"] = "a";
  EXPECT_EQ(verify(make_token(h, claims(), second), key_set), "bad signature");
  h["kid"] = "c";
  EXPECT_EQ(verify(make_token(h, claims(), second), key_set), "unknown kid");
  h["kid"] = "";
  EXPECT_EQ(verify(make_token(h, claims(), second), key_set), "unknown kid");
  h["kid"] = 7;
  EXPECT_EQ(verify(make_token(h, claims(), second), key_set), "kid not a string");
  // Without a kid every key is tried.
  EXPECT_EQ(verify(make_token(header("HS256"), claims(), second), key_set), "verified");
}

TEST_F(JwtTest, KidInTokenNeedsAKeyWithThatKidOrWithoutAny) {
  json h = header("RS256");
  h["kid"] = "rsa-1";
  const std::string with_kid = make_token(h, claims(), signer("RS256"));
  EXPECT_EQ(verify(with_kid, {verifier("RS256", "rsa-1")}), "verified");
  EXPECT_EQ(verify(with_kid, {verifier("RS256", "rsa-2")}), "unknown kid");
  // A configured key without a kid (a secret, a PEM file) answers tokens that name one.
  EXPECT_EQ(verify(with_kid, {verifier("RS256")}), "verified");
  // A key with a kid still verifies a token that names none.
  EXPECT_EQ(verify(token("RS256"), {verifier("RS256", "rsa-1")}), "verified");
}

TEST_F(JwtTest, NoKidTriesEveryKey) {
  const std::vector<JwtKey> key_set = {
      JwtKey::public_key_pem(public_pem(keys().rsa_other.get()), "old"),
      JwtKey::hmac_secret(kSecret + "-wrong"), verifier("RS256", "new")};
  EXPECT_EQ(verify(token("RS256"), key_set), "verified");
  EXPECT_EQ(verify(token("PS384"), key_set), "verified");
  EXPECT_EQ(verify(token("HS256"), key_set), "bad signature");
  EXPECT_EQ(verify(token("RS256"), {}), "no key for alg");
}

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
