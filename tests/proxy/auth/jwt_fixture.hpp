// What the JWT tests share (proxy/src/auth/jwt.cpp is tested in jwt_*_test.cpp): keys
// generated with OpenSSL at test time, a small test-only signer (also OpenSSL), independent
// of the code under test, and the JwtTest fixture. In a named namespace with inline
// definitions: every TEST_F(JwtTest, ...) of the executable must see one fixture class.
#pragma once

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

namespace wsbridge::auth::jwt_test {

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

inline void check(bool ok, const char* what) {
  if (!ok) {
    ERR_clear_error();
    throw std::runtime_error(std::string("test OpenSSL step failed: ") + what);
  }
}

inline const unsigned char* u8(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// base64url through OpenSSL's standard base64 and an alphabet swap, so that tokens are not built
// with the encoder under test.
inline std::string b64url(std::string_view bytes) {
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

inline std::string unb64url(std::string_view text) {
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

inline PkeyPtr keygen_rsa(std::size_t bits) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
  check(key != nullptr, "RSA keygen");
  return key;
}

inline PkeyPtr keygen_ec(const char* curve) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
  check(key != nullptr, "EC keygen");
  return key;
}

inline PkeyPtr keygen(const char* type) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, type));
  check(key != nullptr, "keygen");
  return key;
}

inline std::string drain(BIO* bio) {
  std::string out;
  char buf[1024];
  int n = 0;
  while ((n = BIO_read(bio, buf, sizeof(buf))) > 0) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

inline std::string public_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(bio && PEM_write_bio_PUBKEY(bio.get(), key) == 1, "PEM_write_bio_PUBKEY");
  return drain(bio.get());
}

inline std::string private_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(bio && PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
  return drain(bio.get());
}

// ---- JWK members from generated keys ----------------------------------------------------------

inline std::string bn_param(EVP_PKEY* key, const char* name) {
  BIGNUM* raw = nullptr;
  check(EVP_PKEY_get_bn_param(key, name, &raw) == 1, "EVP_PKEY_get_bn_param");
  const BnPtr bn(raw);
  std::string out(static_cast<std::size_t>(BN_num_bytes(bn.get())), '\0');
  BN_bn2bin(bn.get(), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

inline json rsa_jwk(EVP_PKEY* key, const std::string& kid) {
  return {{"kty", "RSA"},
          {"kid", kid},
          {"n", b64url(bn_param(key, OSSL_PKEY_PARAM_RSA_N))},
          {"e", b64url(bn_param(key, OSSL_PKEY_PARAM_RSA_E))}};
}

inline json ec_jwk(EVP_PKEY* key, const std::string& crv, const std::string& kid) {
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

inline json okp_jwk(EVP_PKEY* key, const std::string& kid) {
  unsigned char raw[32];
  std::size_t len = sizeof(raw);
  check(EVP_PKEY_get_raw_public_key(key, raw, &len) == 1 && len == 32, "raw Ed25519 key");
  return {{"kty", "OKP"},
          {"crv", "Ed25519"},
          {"kid", kid},
          {"x", b64url(std::string_view(reinterpret_cast<const char*>(raw), len))}};
}

inline json oct_jwk(std::string_view secret, const std::string& kid) {
  return {{"kty", "oct"}, {"kid", kid}, {"k", b64url(secret)}};
}

// ---- test-only signer ---------------------------------------------------------------------------

struct SigningKey {
  std::string secret;        // HS*
  EVP_PKEY* pkey = nullptr;  // RS*, PS*, ES*, EdDSA
};

inline std::string digest_for(std::string_view alg) {
  if (alg == "EdDSA") return "";
  return "SHA" + std::string(alg.substr(2));  // HS256 -> SHA256, ...
}

inline std::string sign(std::string_view alg, const SigningKey& key, std::string_view input) {
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

inline std::string token_from_text(std::string_view header, std::string_view payload,
                                   std::string_view alg, const SigningKey& key) {
  const std::string input = b64url(header) + "." + b64url(payload);
  return input + "." + b64url(sign(alg, key, input));
}

inline std::string make_token(const json& header, const json& claims, const SigningKey& key) {
  return token_from_text(header.dump(), claims.dump(), header.at("alg").get<std::string>(), key);
}

// Splits a compact token into its three parts (the tests only call it on well-formed ones).
inline std::vector<std::string> parts_of(const std::string& token) {
  const std::size_t a = token.find('.');
  const std::size_t b = token.find('.', a + 1);
  return {token.substr(0, a), token.substr(a + 1, b - a - 1), token.substr(b + 1)};
}

inline std::string join(const std::vector<std::string>& parts) {
  return parts.at(0) + "." + parts.at(1) + "." + parts.at(2);
}

// "verified" or the error reason, so that EXPECT_EQ prints the reason when a test fails.
inline std::string outcome(const Result& result) {
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
inline const TestKeys& keys() {
  static const TestKeys k;
  return k;
}

inline constexpr std::int64_t kNowSeconds = 1'700'000'000;
inline const Clock::time_point kNow{std::chrono::seconds(kNowSeconds)};
inline const std::string kSecret = "0123456789abcdef0123456789abcdef-wsbridge-test";
inline const std::string kIssuer = "https://issuer.example";
inline const std::string kAudience = "wsbridge";

inline const std::vector<std::string> kAllAlgorithms = {"HS256", "HS384", "HS512", "RS256",
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

}  // namespace wsbridge::auth::jwt_test
