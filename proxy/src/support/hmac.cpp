#include "support/hmac.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <stdexcept>

#include "wsbridge/base64.hpp"

namespace wsbridge {

std::string hmac_sha256_base64url(std::string_view key, std::string_view message,
                                  std::size_t bytes) {
  unsigned char out[EVP_MAX_MD_SIZE];
  std::size_t out_len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                reinterpret_cast<const unsigned char*>(message.data()), message.size(), out,
                sizeof out, &out_len) == nullptr ||
      out_len < kSha256Bytes) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  return base64url_encode(
      std::string_view(reinterpret_cast<const char*>(out), std::min(bytes, kSha256Bytes)));
}

}  // namespace wsbridge
