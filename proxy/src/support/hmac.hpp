// HMAC-SHA256 as wsbridge's own seals use it (fallback session tokens, cluster control
// messages): base64url, without padding, of the first `bytes` bytes of the MAC.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wsbridge {

inline constexpr std::size_t kSha256Bytes = 32;

// Throws std::runtime_error if OpenSSL fails (it does not, short of running out of memory).
std::string hmac_sha256_base64url(std::string_view key, std::string_view message,
                                  std::size_t bytes = kSha256Bytes);

}  // namespace wsbridge
