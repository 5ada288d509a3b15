// Private to the JWT verifier (jwt.cpp, jwt_keys.cpp, jwt_signature.cpp): OpenSSL ownership, the
// key kinds, and what a JwtKey holds.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "auth/jwt.hpp"

namespace wsbridge::auth {
namespace jwt_internal {

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

inline const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// What a key is, from its own type (never from a token's header): decides what it may verify.
enum class KeyKind { kHmac, kRsa, kEcP256, kEcP384, kEd25519 };

// Whether `signature` over `input` verifies with `key` under `alg` (which the key accepts).
bool verify_signature(const JwtKey::Impl& key, JwtAlgorithm alg, std::string_view input,
                      std::string_view signature);

}  // namespace jwt_internal

struct JwtKey::Impl {
  jwt_internal::KeyKind kind = jwt_internal::KeyKind::kHmac;
  std::string kid;
  std::string secret;                      // kHmac only
  jwt_internal::PkeyPtr pkey;              // every other kind
  std::optional<JwtAlgorithm> pinned_alg;  // a JWK "alg" narrows the family to one algorithm

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    // The HMAC secret is the only secret a verifier holds; do not leave it in freed memory.
    if (!secret.empty()) OPENSSL_cleanse(secret.data(), secret.size());
  }
};

}  // namespace wsbridge::auth
