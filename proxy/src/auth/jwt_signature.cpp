// JWS signature verification (RFC 7515, RFC 7518, RFC 8037) on OpenSSL 3: HMAC in constant time,
// RSA PKCS#1 v1.5 and PSS, ECDSA (raw R||S converted to DER), Ed25519.
#include <openssl/rsa.h>

#include "auth/jwt_internal.hpp"

namespace wsbridge::auth::jwt_internal {
namespace {

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

bool is_pss(JwtAlgorithm alg) {
  return alg == JwtAlgorithm::kPS256 || alg == JwtAlgorithm::kPS384 || alg == JwtAlgorithm::kPS512;
}

bool is_pkcs1(JwtAlgorithm alg) {
  return alg == JwtAlgorithm::kRS256 || alg == JwtAlgorithm::kRS384 || alg == JwtAlgorithm::kRS512;
}

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

}  // namespace

bool verify_signature(const JwtKey::Impl& key, JwtAlgorithm alg, std::string_view input,
                      std::string_view signature) {
  if (key.kind == KeyKind::kHmac) return verify_hmac(key, alg, input, signature);
  return verify_public(key, alg, input, signature);
}

}  // namespace wsbridge::auth::jwt_internal
