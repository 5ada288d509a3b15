// JWT verification on OpenSSL 3. Everything that touches attacker-controlled input (the token) is
// strict: one canonical base64url form, one accepted set of algorithms, keys bound to the
// algorithm family they were made for, and no error reason that echoes any part of the token.
#include "auth/jwt.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <utility>

namespace wsbridge::auth {
namespace {

// ---- OpenSSL ownership ------------------------------------------------------------------------

template <auto Free>
struct OpenSslDeleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
// OPENSSL_free is a macro (it passes file and line), so it cannot be a template argument.
struct OpenSslBytesDeleter {
  void operator()(unsigned char* p) const { OPENSSL_free(p); }
};

using BioPtr = std::unique_ptr<BIO, OpenSslDeleter<BIO_free>>;
using BnPtr = std::unique_ptr<BIGNUM, OpenSslDeleter<BN_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, OpenSslDeleter<ECDSA_SIG_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, OpenSslDeleter<EVP_MD_CTX_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, OpenSslDeleter<OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, OpenSslDeleter<OSSL_PARAM_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, OpenSslDeleter<EVP_PKEY_CTX_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, OpenSslDeleter<EVP_PKEY_free>>;
using OpenSslBytes = std::unique_ptr<unsigned char, OpenSslBytesDeleter>;

// A failed verification leaves entries on the thread's OpenSSL error queue. The proxy runs TLS on
// the same threads, and SSL_get_error() consults that queue, so every entry point removes exactly
// what it added (and nothing the caller had queued before).
class OpenSslErrorScope {
 public:
  OpenSslErrorScope() { ERR_set_mark(); }
  ~OpenSslErrorScope() { ERR_pop_to_mark(); }
  OpenSslErrorScope(const OpenSslErrorScope&) = delete;
  OpenSslErrorScope& operator=(const OpenSslErrorScope&) = delete;
};

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// ---- algorithms and key kinds -----------------------------------------------------------------

enum class KeyKind { kHmac, kRsa, kEcP256, kEcP384, kEd25519 };

// The digest name OpenSSL fetches; nullptr for EdDSA, which hashes internally.
const char* digest_name(JwtAlgorithm alg) {
  switch (alg) {
    case JwtAlgorithm::kHS256:
    case JwtAlgorithm::kRS256:
    case JwtAlgorithm::kPS256:
    case JwtAlgorithm::kES256:
      return "SHA256";
    case JwtAlgorithm::kHS384:
    case JwtAlgorithm::kRS384:
    case JwtAlgorithm::kPS384:
    case JwtAlgorithm::kES384:
      return "SHA384";
    case JwtAlgorithm::kHS512:
    case JwtAlgorithm::kRS512:
    case JwtAlgorithm::kPS512:
      return "SHA512";
    case JwtAlgorithm::kEdDSA:
      return nullptr;
  }
  return nullptr;
}

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

bool is_pss(JwtAlgorithm alg) {
  return alg == JwtAlgorithm::kPS256 || alg == JwtAlgorithm::kPS384 || alg == JwtAlgorithm::kPS512;
}

bool is_pkcs1(JwtAlgorithm alg) {
  return alg == JwtAlgorithm::kRS256 || alg == JwtAlgorithm::kRS384 || alg == JwtAlgorithm::kRS512;
}

// RFC 7518 section 3.3: RSA keys of 2048 bits or more.
constexpr int kMinRsaBits = 2048;
// OpenSSL refuses to verify with larger moduli (OPENSSL_RSA_MAX_MODULUS_BITS); refusing at load
// time gives a clear message instead of every token failing.
constexpr int kMaxRsaBits = 16384;

bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace

// ---- JwtKey -----------------------------------------------------------------------------------

struct JwtKey::Impl {
  KeyKind kind = KeyKind::kHmac;
  std::string kid;
  std::string secret;                      // kHmac only
  PkeyPtr pkey;                            // every other kind
  std::optional<JwtAlgorithm> pinned_alg;  // a JWK "alg" narrows the family to one algorithm

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    // The HMAC secret is the only secret a verifier holds; do not leave it in freed memory.
    if (!secret.empty()) OPENSSL_cleanse(secret.data(), secret.size());
  }
};

namespace {

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

std::optional<JwtAlgorithm> parse_jwt_algorithm(std::string_view name) {
  for (const auto& [entry_name, alg] : kJwtAlgorithmNames) {
    if (entry_name == name) return alg;  // case-sensitive, as RFC 7515 requires
  }
  return std::nullopt;
}

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

// ---- verification -------------------------------------------------------------------------------

namespace {

bool verify_hmac(const JwtKey::Impl& key, JwtAlgorithm alg, std::string_view input,
                 std::string_view signature) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  std::size_t mac_len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, digest_name(alg), nullptr, key.secret.data(),
                key.secret.size(), bytes_of(input), input.size(), mac, sizeof(mac),
                &mac_len) == nullptr) {
    return false;
  }
  const bool ok = signature.size() == mac_len &&
                  CRYPTO_memcmp(mac, signature.data(), mac_len) == 0;  // constant time
  // The computed MAC is a valid signature for this input: do not leave it on the stack.
  OPENSSL_cleanse(mac, sizeof(mac));
  return ok;
}

// JWS carries ECDSA signatures as fixed-size big-endian R || S (RFC 7518 section 3.4); OpenSSL
// verifies the DER ECDSA-Sig-Value. An empty result means the signature cannot be valid.
std::optional<std::string> ecdsa_raw_to_der(std::string_view raw, std::size_t coordinate_bytes) {
  if (raw.size() != 2 * coordinate_bytes) return std::nullopt;
  BnPtr r(BN_bin2bn(bytes_of(raw), static_cast<int>(coordinate_bytes), nullptr));
  BnPtr s(BN_bin2bn(bytes_of(raw.substr(coordinate_bytes)), static_cast<int>(coordinate_bytes),
                    nullptr));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return std::nullopt;
  static_cast<void>(r.release());  // now owned by sig
  static_cast<void>(s.release());
  unsigned char* der = nullptr;
  const int der_len = i2d_ECDSA_SIG(sig.get(), &der);
  if (der_len <= 0) return std::nullopt;
  const OpenSslBytes owner(der);
  return std::string(reinterpret_cast<const char*>(der), static_cast<std::size_t>(der_len));
}

bool verify_public(const JwtKey::Impl& key, JwtAlgorithm alg, std::string_view input,
                   std::string_view signature) {
  std::string der;
  if (alg == JwtAlgorithm::kES256 || alg == JwtAlgorithm::kES384) {
    std::optional<std::string> converted =
        ecdsa_raw_to_der(signature, alg == JwtAlgorithm::kES256 ? 32 : 48);
    if (!converted) return false;
    der = std::move(*converted);
    signature = der;
  } else if (alg == JwtAlgorithm::kEdDSA) {
    if (signature.size() != 64) return false;
  } else if (signature.size() != static_cast<std::size_t>(EVP_PKEY_get_size(key.pkey.get()))) {
    return false;  // RSA signatures are exactly the modulus size (RFC 8017 section 8.2.2)
  }

  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return false;
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (EVP_DigestVerifyInit_ex(ctx.get(), &pctx, digest_name(alg), nullptr, nullptr, key.pkey.get(),
                              nullptr) != 1) {
    return false;
  }
  if (is_pkcs1(alg) && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) return false;
  if (is_pss(alg)) {
    // RFC 7518 section 3.5: MGF1 with the same hash, salt as long as the hash output.
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, digest_name(alg), nullptr) != 1) {
      return false;
    }
  }
  // One-shot: Ed25519 supports nothing else, and it is as good as Update/Final for the others.
  return EVP_DigestVerify(ctx.get(), bytes_of(signature), signature.size(), bytes_of(input),
                          input.size()) == 1;
}

bool verify_signature(const JwtKey::Impl& key, JwtAlgorithm alg, std::string_view input,
                      std::string_view signature) {
  if (key.kind == KeyKind::kHmac) return verify_hmac(key, alg, input, signature);
  return verify_public(key, alg, input, signature);
}

JwtError fail(std::string reason) {
  return JwtError{std::move(reason)};
}

// Reads an optional NumericDate claim. False when it is present but not a number.
bool numeric_claim(const nlohmann::json& claims, const char* name, std::optional<double>& out) {
  const auto it = claims.find(name);
  if (it == claims.end()) return true;
  if (!it->is_number()) return false;  // nlohmann: booleans are not numbers
  const double value = it->get<double>();
  if (!std::isfinite(value)) return false;
  out = value;
  return true;
}

// exp as a time_point, saturating where system_clock cannot represent it (its nanosecond
// duration ends in 2262), so that a far-future exp cannot overflow.
std::chrono::system_clock::time_point to_time_point(double seconds) {
  using Clock = std::chrono::system_clock;
  const double limit =
      std::chrono::duration<double>(Clock::duration::max()).count() * 0.99;  // margin for rounding
  if (seconds >= limit) return Clock::time_point::max();
  if (seconds <= -limit) return Clock::time_point::min();
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)));
}

}  // namespace

std::variant<VerifiedToken, JwtError> verify_jwt(std::string_view token,
                                                 const std::vector<JwtKey>& keys,
                                                 const JwtPolicy& policy,
                                                 std::chrono::system_clock::time_point now) {
  OpenSslErrorScope errors;
  if (token.size() > policy.max_token_bytes) return fail("token too large");

  const std::size_t dot1 = token.find('.');
  const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return fail("malformed token: not three parts");
  }
  const std::string_view signing_input = token.substr(0, dot2);
  std::optional<std::string> header_bytes = base64url_decode(token.substr(0, dot1));
  std::optional<std::string> payload_bytes =
      base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  std::optional<std::string> signature = base64url_decode(token.substr(dot2 + 1));
  if (!header_bytes || !payload_bytes || !signature) return fail("malformed token: bad base64url");

  nlohmann::json header = nlohmann::json::parse(*header_bytes, nullptr, false);
  if (header.is_discarded() || !header.is_object()) return fail("malformed header");

  const auto alg_member = header.find("alg");
  if (alg_member == header.end()) return fail("alg missing");
  if (!alg_member->is_string()) return fail("alg not a string");
  const std::string& alg_name = alg_member->get_ref<const std::string&>();
  if (ascii_iequals(alg_name, "none")) return fail("alg none refused");
  const std::optional<JwtAlgorithm> alg = parse_jwt_algorithm(alg_name);
  if (!alg) return fail("alg not supported");
  // No extension is understood, so RFC 7515 section 4.1.11 requires rejecting any "crit".
  if (header.contains("crit")) return fail("crit refused");

  const std::string* kid = nullptr;
  if (const auto it = header.find("kid"); it != header.end()) {
    if (!it->is_string()) return fail("kid not a string");
    kid = &it->get_ref<const std::string&>();
  }

  bool kid_found = false;
  bool key_for_alg = false;
  bool verified = false;
  for (const JwtKey& key : keys) {
    // A key with a kid answers only tokens naming it; a key without one (a configured secret or
    // PEM key) is a candidate for every token, as identity providers put a kid in all of them.
    if (kid != nullptr && !key.kid().empty() && key.kid() != *kid) continue;
    kid_found = true;
    if (!key.accepts(*alg)) continue;
    key_for_alg = true;
    if (verify_signature(key.impl(), *alg, signing_input, *signature)) {
      verified = true;
      break;
    }
  }
  if (!verified) {
    if (kid != nullptr && !kid_found) return fail("unknown kid");
    if (!key_for_alg) return fail("no key for alg");
    return fail("bad signature");
  }

  // The payload is parsed only once the signature holds: unauthenticated input reaches the JSON
  // parser as little as possible.
  nlohmann::json claims = nlohmann::json::parse(*payload_bytes, nullptr, false);
  if (claims.is_discarded() || !claims.is_object()) return fail("malformed payload");

  const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
  const double leeway = static_cast<double>(policy.leeway.count());
  std::optional<double> exp;
  std::optional<double> nbf;
  std::optional<double> iat;
  if (!numeric_claim(claims, "exp", exp)) return fail("exp not a number");
  if (!numeric_claim(claims, "nbf", nbf)) return fail("nbf not a number");
  if (!numeric_claim(claims, "iat", iat)) return fail("iat not a number");
  if (!exp && policy.require_exp) return fail("exp missing");
  if (exp && now_s > *exp + leeway) return fail("expired");
  if (nbf && now_s + leeway < *nbf) return fail("not yet valid");
  if (iat && *iat > now_s + leeway) return fail("issued in the future");

  if (policy.issuer) {
    const auto iss = claims.find("iss");
    if (iss == claims.end() || !iss->is_string() ||
        iss->get_ref<const std::string&>() != *policy.issuer) {
      return fail("issuer mismatch");
    }
  }

  if (!policy.audiences.empty()) {
    const auto aud = claims.find("aud");
    if (aud == claims.end()) return fail("aud missing");
    auto wanted = [&policy](const nlohmann::json& value) {
      for (const std::string& audience : policy.audiences) {
        if (value.get_ref<const std::string&>() == audience) return true;
      }
      return false;
    };
    bool match = false;
    if (aud->is_string()) {
      match = wanted(*aud);
    } else if (aud->is_array()) {
      for (const auto& value : *aud) {
        if (!value.is_string()) return fail("aud not a string or array of strings");
        match = match || wanted(value);
      }
    } else {
      return fail("aud not a string or array of strings");
    }
    if (!match) return fail("audience mismatch");
  }

  VerifiedToken result;
  if (const auto sub = claims.find("sub"); sub != claims.end()) {
    if (!sub->is_string()) return fail("sub not a string");
    result.subject = sub->get<std::string>();
  }
  if (exp) result.expires_at = to_time_point(*exp);
  result.header = std::move(header);
  result.claims = std::move(claims);
  return result;
}

}  // namespace wsbridge::auth
