// JSON Web Token (RFC 7519) verification on OpenSSL 3 only: JWS compact serialization (RFC 7515)
// with the algorithms of RFC 7518 and RFC 8037. No other crypto library.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "wsbridge/base64.hpp"  // base64url, which tokens and keys are written in

namespace wsbridge::auth {

// Accepted algorithms: HS256/384/512, RS256/384/512, PS256/384/512, ES256, ES384, EdDSA
// (Ed25519). "none" and anything else are refused.
enum class JwtAlgorithm {
  kHS256,
  kHS384,
  kHS512,
  kRS256,
  kRS384,
  kRS512,
  kPS256,
  kPS384,
  kPS512,
  kES256,
  kES384,
  kEdDSA
};
// Their names as tokens and configurations spell them (case-sensitive, RFC 7515).
inline constexpr std::pair<std::string_view, JwtAlgorithm> kJwtAlgorithmNames[] = {
    {"HS256", JwtAlgorithm::kHS256}, {"HS384", JwtAlgorithm::kHS384},
    {"HS512", JwtAlgorithm::kHS512}, {"RS256", JwtAlgorithm::kRS256},
    {"RS384", JwtAlgorithm::kRS384}, {"RS512", JwtAlgorithm::kRS512},
    {"PS256", JwtAlgorithm::kPS256}, {"PS384", JwtAlgorithm::kPS384},
    {"PS512", JwtAlgorithm::kPS512}, {"ES256", JwtAlgorithm::kES256},
    {"ES384", JwtAlgorithm::kES384}, {"EdDSA", JwtAlgorithm::kEdDSA},
};
std::optional<JwtAlgorithm> parse_jwt_algorithm(std::string_view name);

// One verification key. A key is bound to the algorithm family it can verify: an HMAC secret only
// verifies HS*, an RSA key only RS*/PS*, an EC P-256 key only ES256, P-384 only ES384, an Ed25519
// key only EdDSA. This binding is what defeats algorithm confusion (e.g. HS256 with an RSA public
// key used as the HMAC secret).
class JwtKey {
 public:
  static JwtKey hmac_secret(std::string secret, std::string kid = "");
  // A PEM "PUBLIC KEY" (SubjectPublicKeyInfo): RSA, EC P-256/P-384 or Ed25519. Throws
  // std::invalid_argument with a clear message when it cannot be read or is another type.
  static JwtKey public_key_pem(std::string_view pem, std::string kid = "");
  // One JWK (RFC 7517) object: kty RSA (n, e), EC (crv P-256/P-384, x, y), OKP (crv Ed25519, x),
  // or oct (k, for HMAC). "use" other than "sig" and "alg" mismatching the key are refused.
  // Throws std::invalid_argument on anything malformed.
  static JwtKey from_jwk(const nlohmann::json& jwk);

  const std::string& kid() const;
  // Whether this key may verify tokens of `alg` (see the binding above; a JWK "alg" narrows it).
  bool accepts(JwtAlgorithm alg) const;

  JwtKey(const JwtKey&);
  JwtKey& operator=(const JwtKey&);
  JwtKey(JwtKey&&) noexcept;
  JwtKey& operator=(JwtKey&&) noexcept;
  ~JwtKey();

  struct Impl;  // holds the EVP_PKEY or the secret
  const Impl& impl() const { return *impl_; }

 private:
  explicit JwtKey(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

// A JWKS document ({"keys":[...]}): every usable key. Keys that cannot be used (unknown kty,
// use != sig) are skipped; a malformed document throws std::invalid_argument.
std::vector<JwtKey> parse_jwks(const nlohmann::json& jwks);

struct JwtPolicy {
  std::chrono::seconds leeway{30};     // tolerance for exp, nbf, iat
  std::optional<std::string> issuer;   // required "iss" when set
  std::vector<std::string> audiences;  // when non-empty, "aud" must contain one
  bool require_exp = true;             // a token without "exp" is refused
  std::size_t max_token_bytes = 8192;
};

struct VerifiedToken {
  nlohmann::json header;
  nlohmann::json claims;                                            // the whole payload object
  std::string subject;                                              // "sub", empty when absent
  std::optional<std::chrono::system_clock::time_point> expires_at;  // "exp"
};

struct JwtError {
  std::string
      reason;  // for logs: "expired", "bad signature", "alg none refused", ... never the token
};

// Verifies `token` against `keys` under `policy` at time `now`:
// - size <= max_token_bytes; exactly three base64url parts (no padding, no other characters);
//   header and payload are JSON objects;
// - header "alg" is one of the accepted algorithms ("none" refused, as is a missing alg);
//   "crit" is refused (no extensions supported);
// - the key: when the header has "kid", keys with that kid and keys without any kid; else every
//   key; a key must
//   accept the alg; the signature must verify with one of them. HMAC compares in constant time
//   (CRYPTO_memcmp). ES256/ES384 signatures are raw R||S (64/96 bytes), converted to DER for
//   OpenSSL. PS* use PSS with MGF1 of the same hash and salt length = hash length.
// - claims: exp (number; now > exp + leeway refused), nbf (now + leeway < nbf refused),
//   iat (in the future beyond leeway refused), iss, aud (string or array).
std::variant<VerifiedToken, JwtError> verify_jwt(std::string_view token,
                                                 const std::vector<JwtKey>& keys,
                                                 const JwtPolicy& policy,
                                                 std::chrono::system_clock::time_point now);

}  // namespace wsbridge::auth
