// Test-only HS256 token minting (the bridge verifies; tests need tokens to present).
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "wsbridge/base64.hpp"

namespace wsbridge::testing {

inline std::string b64url(std::string_view bytes) {
  return base64url_encode(bytes);
}

inline std::string sign_hs256(const nlohmann::json& claims, const std::string& secret,
                              const nlohmann::json& header = {{"alg", "HS256"}, {"typ", "JWT"}}) {
  const std::string input = b64url(header.dump()) + "." + b64url(claims.dump());
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + b64url(std::string(reinterpret_cast<char*>(mac), len));
}

inline long long unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace wsbridge::testing
