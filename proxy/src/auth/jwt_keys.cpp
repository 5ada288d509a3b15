// JWT verification keys: loading them from an HMAC secret, a PEM public key, a JWK or a JWKS
// document, and binding each to the algorithm family it may verify.
#include <openssl/core_names.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include <climits>
#include <stdexcept>
#include <utility>

#include "auth/jwt.hpp"
#include "auth/jwt_internal.hpp"

namespace wsbridge::auth {
using namespace jwt_internal;  // NOLINT(google-build-using-namespace): this verifier's own
                               // internals

namespace {

// The binding that defeats algorithm confusion: the key's own type decides what it may verify,
// never the token's header.
bool kind_accepts(KeyKind kind, JwtAlgorithm alg) {
  switch (alg) {
    case JwtAlgorithm::kHS256:
    case JwtAlgorithm::kHS384:
    case JwtAlgorithm::kHS512:
      return kind == KeyKind::kHmac;
    case JwtAlgorithm::kRS256:
    case JwtAlgorithm::kRS384:
    case JwtAlgorithm::kRS512:
    case JwtAlgorithm::kPS256:
    case JwtAlgorithm::kPS384:
    case JwtAlgorithm::kPS512:
      return kind == KeyKind::kRsa;
    case JwtAlgorithm::kES256:
      return kind == KeyKind::kEcP256;
    case JwtAlgorithm::kES384:
      return kind == KeyKind::kEcP384;
    case JwtAlgorithm::kEdDSA:
      return kind == KeyKind::kEd25519;
  }
  return false;
}

// RFC 7518 section 3.3: RSA keys of 2048 bits or more.
constexpr int kMinRsaBits = 2048;
// OpenSSL refuses to verify with larger moduli (OPENSSL_RSA_MAX_MODULUS_BITS); refusing at load
// time gives a clear message instead of every token failing.
constexpr int kMaxRsaBits = 16384;

// Thrown for a JWK that is well formed but that this verifier cannot or must not use (unknown
// kty or crv, use "enc", ...). parse_jwks skips these; from_jwk lets them through as the
// std::invalid_argument they also are.
class UnusableJwk : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Decides the key kind from the EVP_PKEY itself and refuses any type or size we do not verify.
KeyKind classify_public_key(EVP_PKEY* pkey, const std::string& what) {
  if (EVP_PKEY_is_a(pkey, "RSA")) {
    const int bits = EVP_PKEY_get_bits(pkey);
    if (bits < kMinRsaBits) {
      throw UnusableJwk(what + ": RSA key of " + std::to_string(bits) +
                        " bits is too small (at least 2048 required)");
    }
    if (bits > kMaxRsaBits) throw UnusableJwk(what + ": RSA key is larger than 16384 bits");
    return KeyKind::kRsa;
  }
  if (EVP_PKEY_is_a(pkey, "EC")) {
    char group[64] = {};
    std::size_t group_len = 0;
    if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &group_len) != 1) {
      throw std::invalid_argument(what + ": EC key without a named curve");
    }
    int nid = OBJ_sn2nid(group);
    if (nid == NID_undef) nid = EC_curve_nist2nid(group);
    KeyKind kind;
    if (nid == NID_X9_62_prime256v1) {
      kind = KeyKind::kEcP256;
    } else if (nid == NID_secp384r1) {
      kind = KeyKind::kEcP384;
    } else {
      throw UnusableJwk(what + ": EC curve " + group + " is not supported (P-256 or P-384)");
    }
    // Rejects the point at infinity and points off the curve, whatever the import path checked.
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
    if (!ctx || EVP_PKEY_public_check(ctx.get()) != 1) {
      throw std::invalid_argument(what + ": EC public key is not a valid point");
    }
    return kind;
  }
  if (EVP_PKEY_is_a(pkey, "ED25519")) return KeyKind::kEd25519;
  // RSA-PSS (restricted) keys, Ed448, X25519, DSA, ... are not verification keys we support.
  throw UnusableJwk(what + ": unsupported key type (RSA, EC P-256/P-384 or Ed25519 expected)");
}

std::shared_ptr<JwtKey::Impl> make_public_impl(PkeyPtr pkey, std::string kid,
                                               const std::string& what) {
  auto impl = std::make_shared<JwtKey::Impl>();
  impl->kind = classify_public_key(pkey.get(), what);
  impl->pkey = std::move(pkey);
  impl->kid = std::move(kid);
  return impl;
}

// ---- JWK members --------------------------------------------------------------------------------

// A member that must be a string when present.
const std::string* optional_string(const nlohmann::json& jwk, const char* name) {
  const auto it = jwk.find(name);
  if (it == jwk.end()) return nullptr;
  if (!it->is_string()) {
    throw std::invalid_argument(std::string("JWK member \"") + name + "\" is not a string");
  }
  return &it->get_ref<const std::string&>();
}

const std::string& required_string(const nlohmann::json& jwk, const char* name) {
  const std::string* value = optional_string(jwk, name);
  if (value == nullptr) {
    throw std::invalid_argument(std::string("JWK member \"") + name + "\" is missing");
  }
  return *value;
}

std::string required_base64url(const nlohmann::json& jwk, const char* name) {
  std::optional<std::string> bytes = base64url_decode(required_string(jwk, name));
  if (!bytes) {
    throw std::invalid_argument(std::string("JWK member \"") + name + "\" is not base64url");
  }
  return std::move(*bytes);
}

// Imports public key parameters (EVP_PKEY_fromdata: the non-deprecated replacement for
// RSA_set0_key / EC_KEY_set_public_key).
PkeyPtr pkey_from_params(const char* type, OSSL_PARAM_BLD* bld, const std::string& what) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) {
    throw std::runtime_error(what + ": OpenSSL could not prepare the key import");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    throw std::invalid_argument(what + ": the key parameters are not a valid public key");
  }
  return PkeyPtr(raw);
}

PkeyPtr rsa_from_jwk(const nlohmann::json& jwk) {
  const std::string n = required_base64url(jwk, "n");
  const std::string e = required_base64url(jwk, "e");
  if (n.empty() || e.empty()) throw std::invalid_argument("RSA JWK: empty \"n\" or \"e\"");
  if (n.size() > kMaxRsaBits / 8 + 1) throw UnusableJwk("RSA JWK: modulus larger than 16384 bits");
  // Larger exponents only make verification slow; real keys use 65537.
  if (e.size() > 8) throw UnusableJwk("RSA JWK: public exponent larger than 64 bits");
  BnPtr bn_n(BN_bin2bn(bytes_of(n), static_cast<int>(n.size()), nullptr));
  BnPtr bn_e(BN_bin2bn(bytes_of(e), static_cast<int>(e.size()), nullptr));
  if (!bn_n || !bn_e) throw std::runtime_error("RSA JWK: out of memory");
  if (!BN_is_odd(bn_n.get()) || !BN_is_odd(bn_e.get()) || BN_is_one(bn_e.get())) {
    throw std::invalid_argument("RSA JWK: \"n\" and \"e\" must be odd and \"e\" greater than 1");
  }
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    throw std::runtime_error("RSA JWK: out of memory");
  }
  return pkey_from_params("RSA", bld.get(), "RSA JWK");
}

PkeyPtr ec_from_jwk(const nlohmann::json& jwk) {
  const std::string& crv = required_string(jwk, "crv");
  const char* group = nullptr;
  std::size_t coordinate_bytes = 0;
  if (crv == "P-256") {
    group = SN_X9_62_prime256v1;
    coordinate_bytes = 32;
  } else if (crv == "P-384") {
    group = SN_secp384r1;
    coordinate_bytes = 48;
  } else {
    throw UnusableJwk("EC JWK: curve \"" + crv + "\" is not supported (P-256 or P-384)");
  }
  const std::string x = required_base64url(jwk, "x");
  const std::string y = required_base64url(jwk, "y");
  // RFC 7518 section 6.2.1.2: the coordinates are the full field size, leading zeros kept.
  if (x.size() != coordinate_bytes || y.size() != coordinate_bytes) {
    throw std::invalid_argument("EC JWK: \"x\" and \"y\" must be " +
                                std::to_string(coordinate_bytes) + " bytes for " + crv);
  }
  const std::string point = std::string(1, '\x04') + x + y;  // SEC1 uncompressed point
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    throw std::runtime_error("EC JWK: out of memory");
  }
  return pkey_from_params("EC", bld.get(), "EC JWK");
}

PkeyPtr okp_from_jwk(const nlohmann::json& jwk) {
  const std::string& crv = required_string(jwk, "crv");
  if (crv != "Ed25519") {
    throw UnusableJwk("OKP JWK: curve \"" + crv + "\" is not supported (Ed25519)");
  }
  const std::string x = required_base64url(jwk, "x");
  if (x.size() != 32) throw std::invalid_argument("OKP JWK: Ed25519 \"x\" must be 32 bytes");
  PkeyPtr pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes_of(x), x.size()));
  if (!pkey) throw std::invalid_argument("OKP JWK: \"x\" is not an Ed25519 public key");
  return pkey;
}

std::shared_ptr<JwtKey::Impl> impl_from_jwk(const nlohmann::json& jwk) {
  if (!jwk.is_object()) throw std::invalid_argument("JWK is not a JSON object");
  const std::string& kty = required_string(jwk, "kty");
  const std::string* kid = optional_string(jwk, "kid");

  if (const std::string* use = optional_string(jwk, "use"); use != nullptr && *use != "sig") {
    throw UnusableJwk("JWK \"use\" is \"" + *use + "\", not \"sig\"");
  }
  if (const auto ops = jwk.find("key_ops"); ops != jwk.end()) {
    if (!ops->is_array()) throw std::invalid_argument("JWK \"key_ops\" is not an array");
    bool verify = false;
    for (const auto& op : *ops) {
      if (!op.is_string()) throw std::invalid_argument("JWK \"key_ops\" holds a non-string");
      verify = verify || op.get_ref<const std::string&>() == "verify";
    }
    if (!verify) throw UnusableJwk("JWK \"key_ops\" does not allow \"verify\"");
  }
  std::optional<JwtAlgorithm> pinned;
  if (const std::string* alg = optional_string(jwk, "alg"); alg != nullptr) {
    pinned = parse_jwt_algorithm(*alg);
    if (!pinned) throw UnusableJwk("JWK \"alg\" \"" + *alg + "\" is not a supported algorithm");
  }

  auto impl = std::make_shared<JwtKey::Impl>();
  if (kty == "oct") {
    std::string k = required_base64url(jwk, "k");
    if (k.empty()) throw std::invalid_argument("oct JWK: \"k\" is empty");
    impl->kind = KeyKind::kHmac;
    impl->secret = std::move(k);
  } else {
    PkeyPtr pkey;
    if (kty == "RSA") {
      pkey = rsa_from_jwk(jwk);
    } else if (kty == "EC") {
      pkey = ec_from_jwk(jwk);
    } else if (kty == "OKP") {
      pkey = okp_from_jwk(jwk);
    } else {
      throw UnusableJwk("JWK \"kty\" \"" + kty + "\" is not supported");
    }
    impl->kind = classify_public_key(pkey.get(), kty + " JWK");
    impl->pkey = std::move(pkey);
  }
  if (pinned && !kind_accepts(impl->kind, *pinned)) {
    throw UnusableJwk("JWK \"alg\" does not match its key type");
  }
  impl->pinned_alg = pinned;
  if (kid != nullptr) impl->kid = *kid;
  return impl;
}

}  // namespace

JwtKey::JwtKey(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
JwtKey::JwtKey(const JwtKey&) = default;
JwtKey& JwtKey::operator=(const JwtKey&) = default;
JwtKey::JwtKey(JwtKey&&) noexcept = default;
JwtKey& JwtKey::operator=(JwtKey&&) noexcept = default;
JwtKey::~JwtKey() = default;

JwtKey JwtKey::hmac_secret(std::string secret, std::string kid) {
  // An empty secret would make every HS* token trivially forgeable.
  if (secret.empty()) throw std::invalid_argument("HMAC secret is empty");
  auto impl = std::make_shared<Impl>();
  impl->kind = KeyKind::kHmac;
  impl->secret = std::move(secret);
  impl->kid = std::move(kid);
  return JwtKey(std::move(impl));
}

JwtKey JwtKey::public_key_pem(std::string_view pem, std::string kid) {
  OpenSslErrorScope errors;
  if (pem.size() > static_cast<std::size_t>(INT_MAX)) {
    throw std::invalid_argument("public key PEM is too large");
  }
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) throw std::runtime_error("public key PEM: out of memory");
  // A callback that never supplies a passphrase: without one, OpenSSL would prompt on the
  // terminal if the PEM claimed to be encrypted.
  pem_password_cb* no_passphrase = [](char*, int, int, void*) -> int { return 0; };
  PkeyPtr pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, no_passphrase, nullptr));
  if (!pkey) {
    throw std::invalid_argument(
        "public key PEM: cannot read a \"PUBLIC KEY\" (SubjectPublicKeyInfo) block");
  }
  return JwtKey(make_public_impl(std::move(pkey), std::move(kid), "public key PEM"));
}

JwtKey JwtKey::from_jwk(const nlohmann::json& jwk) {
  OpenSslErrorScope errors;
  return JwtKey(impl_from_jwk(jwk));
}

const std::string& JwtKey::kid() const {
  return impl_->kid;
}

bool JwtKey::accepts(JwtAlgorithm alg) const {
  if (!kind_accepts(impl_->kind, alg)) return false;
  return !impl_->pinned_alg || *impl_->pinned_alg == alg;
}

std::vector<JwtKey> parse_jwks(const nlohmann::json& jwks) {
  if (!jwks.is_object()) throw std::invalid_argument("JWKS is not a JSON object");
  const auto keys = jwks.find("keys");
  if (keys == jwks.end() || !keys->is_array()) {
    throw std::invalid_argument("JWKS has no \"keys\" array");
  }
  OpenSslErrorScope errors;
  std::vector<JwtKey> out;
  for (const auto& jwk : *keys) {
    try {
      out.push_back(JwtKey::from_jwk(jwk));
    } catch (const UnusableJwk&) {
      // An identity provider may publish encryption keys or curves we do not support next to
      // the signing keys; those must not make the whole document unusable.
    }
  }
  return out;
}

}  // namespace wsbridge::auth
