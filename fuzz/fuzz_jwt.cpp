// JWT verification and JWKS parsing on arbitrary input.
//
// Checked:
// - verify_jwt(input) against fixed keys (an HMAC secret, the same secret with a kid, an EC P-256
//   key from PEM and the same key from a JWK with a kid) under two policies never crashes or
//   throws; a token that verifies has an alg those keys accept and a consistent subject/expiry,
//   and stops verifying when the first character of its signature is changed;
// - base64url: decode(encode(x)) == x, and encode(decode(s)) == s whenever decode succeeds
//   (the decoder is strict, so an encoding is unique);
// - the input as JSON: parse_jwks and JwtKey::from_jwk throw std::invalid_argument or succeed;
// - "token\njwks": the token verified against the keys of that JWKS never crashes.
// The fixed keys and the clock match fuzz/make_seeds.py, which makes the seed tokens.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "auth/jwt.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace wsbridge::auth;
using wsbridge::base64url_decode;
using wsbridge::base64url_encode;

constexpr std::string_view kHmacSecret = "wsbridge-fuzz-hmac-secret-0123456789abcdef";
constexpr std::string_view kEcPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1Ub0p7SRrRn90ug9/smI6LS8VAjJ\n"
    "IYKVLpNJ1y2SBbDXnK91L2IFf5lG4TIq4g8pk2KEengnhiM7nJW5U9GAEw==\n"
    "-----END PUBLIC KEY-----\n";
constexpr const char* kEcX = "1Ub0p7SRrRn90ug9_smI6LS8VAjJIYKVLpNJ1y2SBbA";
constexpr const char* kEcY = "15yvdS9iBX-ZRuEyKuIPKZNihHp4J4YjO5yVuVPRgBM";
// 2030-01-01T00:00:00Z: the seed tokens are valid then.
constexpr std::int64_t kNow = 1893456000;

[[noreturn]] void fail(const char* what, std::string_view detail) {
  wsbridge_fuzz::fail("fuzz_jwt", what, {detail});
}

const std::vector<JwtKey>& fixed_keys() {
  static const std::vector<JwtKey> keys = [] {
    std::vector<JwtKey> k;
    k.push_back(JwtKey::hmac_secret(std::string(kHmacSecret)));
    k.push_back(JwtKey::hmac_secret(std::string(kHmacSecret), "hs-kid"));
    k.push_back(JwtKey::public_key_pem(kEcPem));
    k.push_back(JwtKey::from_jwk({{"kty", "EC"},
                                  {"crv", "P-256"},
                                  {"x", kEcX},
                                  {"y", kEcY},
                                  {"kid", "ec-kid"},
                                  {"use", "sig"},
                                  {"alg", "ES256"}}));
    return k;
  }();
  return keys;
}

const std::vector<JwtPolicy>& policies() {
  static const std::vector<JwtPolicy> all = [] {
    std::vector<JwtPolicy> p(2);
    p[1].leeway = std::chrono::seconds(0);
    p[1].issuer = "https://issuer.example";
    p[1].audiences = {"wsbridge", "other"};
    p[1].require_exp = false;
    return p;
  }();
  return all;
}

std::chrono::system_clock::time_point now() {
  return std::chrono::system_clock::time_point(std::chrono::seconds(kNow));
}

void check_base64url(std::string_view text) {
  if (auto decoded = base64url_decode(text)) {
    if (base64url_encode(*decoded) != text) fail("base64url: encode(decode(s)) != s", text);
  }
  const auto round = base64url_decode(base64url_encode(text));
  if (!round || *round != text) fail("base64url: decode(encode(x)) != x", text);
}

void check_verified(std::string_view token, const VerifiedToken& v, const JwtPolicy& policy,
                    const std::vector<JwtKey>& keys) {
  if (!v.header.is_object() || !v.claims.is_object()) fail("verified without objects", token);
  const auto alg_it = v.header.find("alg");
  if (alg_it == v.header.end() || !alg_it->is_string())
    fail("verified without a string alg", token);
  const auto alg = parse_jwt_algorithm(alg_it->get<std::string>());
  if (!alg) fail("verified with an unsupported alg", token);
  bool accepted = false;
  for (const auto& key : keys) accepted = accepted || key.accepts(*alg);
  if (!accepted) fail("verified with an alg no key accepts", token);
  if (v.header.contains("crit")) fail("verified with crit", token);
  if (policy.require_exp && !v.expires_at) fail("verified without exp under require_exp", token);
  const auto sub = v.claims.find("sub");
  if (sub != v.claims.end() && (!sub->is_string() || sub->get<std::string>() != v.subject)) {
    fail("subject differs from sub", token);
  }
  if (sub == v.claims.end() && !v.subject.empty()) fail("subject without sub", token);

  // A changed signature must not verify.
  const std::size_t dot = token.rfind('.');
  if (dot + 1 < token.size()) {
    std::string tampered(token);
    char& c = tampered[dot + 1];
    c = c == 'A' ? 'B' : 'A';
    if (std::holds_alternative<VerifiedToken>(verify_jwt(tampered, keys, policy, now()))) {
      fail("a token with a changed signature still verifies", token);
    }
  }
}

void verify_all_policies(std::string_view token, const std::vector<JwtKey>& keys) {
  for (const auto& policy : policies()) {
    const auto result = verify_jwt(token, keys, policy, now());
    if (const auto* v = std::get_if<VerifiedToken>(&result)) {
      check_verified(token, *v, policy, keys);
    } else if (std::get<JwtError>(result).reason.empty()) {
      fail("error without a reason", token);
    }
  }
}

std::vector<JwtKey> jwks_keys(std::string_view text) {
  const auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return {};
  try {
    (void)JwtKey::from_jwk(doc);
  } catch (const std::invalid_argument&) {
  }
  try {
    return parse_jwks(doc);
  } catch (const std::invalid_argument&) {
    return {};
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  verify_all_policies(input, fixed_keys());

  check_base64url(input);
  for (std::string_view rest = input;;) {
    const std::size_t dot = rest.find('.');
    check_base64url(rest.substr(0, dot));
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }

  (void)jwks_keys(input);

  // "token\njwks"
  if (const std::size_t nl = input.find('\n'); nl != std::string_view::npos) {
    const auto keys = jwks_keys(input.substr(nl + 1));
    if (!keys.empty()) verify_all_policies(input.substr(0, nl), keys);
  }
  return 0;
}
