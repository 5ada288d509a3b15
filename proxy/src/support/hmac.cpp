#include "support/hmac.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <memory>
#include <stdexcept>

#include "wsbridge/base64.hpp"

namespace wsbridge {

std::string hmac_sha256_base64url(std::string_view key, std::string_view message,
                                  std::size_t bytes) {
  return HmacSha256(key).base64url(message, bytes);
}

HmacSha256::HmacSha256(std::string_view key) {
  std::unique_ptr<EVP_MAC, decltype(&EVP_MAC_free)> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr),
                                                        &EVP_MAC_free);
  if (mac) keyed_ = EVP_MAC_CTX_new(mac.get());  // (holds its own reference to `mac`)
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
  if (keyed_ == nullptr || EVP_MAC_init(keyed_, reinterpret_cast<const unsigned char*>(key.data()),
                                        key.size(), params) != 1) {
    EVP_MAC_CTX_free(keyed_);
    throw std::runtime_error("HMAC-SHA256 failed");
  }
}

HmacSha256::~HmacSha256() {
  EVP_MAC_CTX_free(keyed_);
}

std::string HmacSha256::base64url(std::string_view message, std::size_t bytes) const {
  std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(EVP_MAC_CTX_dup(keyed_),
                                                                &EVP_MAC_CTX_free);
  unsigned char out[EVP_MAX_MD_SIZE];
  std::size_t out_len = 0;
  if (!ctx ||
      EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1 ||
      EVP_MAC_final(ctx.get(), out, &out_len, sizeof out) != 1 || out_len < kSha256Bytes) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  return base64url_encode(
      std::string_view(reinterpret_cast<const char*>(out), std::min(bytes, kSha256Bytes)));
}

}  // namespace wsbridge
