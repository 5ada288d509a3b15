// HMAC-SHA256 as wsbridge's own seals use it (fallback session tokens, cluster control
// messages): base64url, without padding, of the first `bytes` bytes of the MAC.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

typedef struct evp_mac_ctx_st EVP_MAC_CTX;

namespace wsbridge {

inline constexpr std::size_t kSha256Bytes = 32;

// One key for many messages, as a fallback session's token is checked on every request:
// OpenSSL 3.0 looks the algorithms up and prepares the key anew on each one-shot call (2.5 times
// the cost, measured), so this keeps a context with the key prepared and copies it per message.
// Safe to use from several threads at once (the prepared context is only read). Throws
// std::runtime_error if OpenSSL fails (it does not, short of running out of memory).
class HmacSha256 {
 public:
  explicit HmacSha256(std::string_view key);
  ~HmacSha256();
  HmacSha256(const HmacSha256&) = delete;
  HmacSha256& operator=(const HmacSha256&) = delete;

  std::string base64url(std::string_view message, std::size_t bytes = kSha256Bytes) const;

 private:
  EVP_MAC_CTX* keyed_ = nullptr;
};

// The same for one message (cluster control messages, seldom).
std::string hmac_sha256_base64url(std::string_view key, std::string_view message,
                                  std::size_t bytes = kSha256Bytes);

}  // namespace wsbridge
