// The token of a fallback session (docs/FALLBACK.md): "v1.<instance>.<connection
// id>.<expiry>.<mac>", the instance in base64url, the mac an HMAC-SHA256 (base64url, 128 bits kept)
// over the instance, the connection id and the expiry. It proves itself, so no store is shared
// between shards or instances: whoever holds the key can tell which instance issued it, for which
// connection and until when (and forward a request to that instance).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "support/hmac.hpp"

namespace wsbridge::fallback {

class SessionTokens {
 public:
  // `secret` empty: a random key of this process (tokens die with it).
  SessionTokens(std::string instance, std::string_view secret);

  std::string issue(std::uint64_t connection, std::chrono::system_clock::time_point expiry) const;

  struct Named {
    std::string instance;  // the instance that issued it, which owns the session
    std::uint64_t connection = 0;
    bool mine = false;  // that instance is this one
  };
  // What a token names, if it verifies and has not expired at `now`.
  std::optional<Named> verify(std::string_view token,
                              std::chrono::system_clock::time_point now) const;
  const std::string& instance() const { return instance_; }

 private:
  std::string mac(std::string_view instance, std::uint64_t connection, std::int64_t expiry) const;
  std::string instance_;
  HmacSha256 hmac_;  // keyed once: a token is checked on every request of its session
};

}  // namespace wsbridge::fallback
