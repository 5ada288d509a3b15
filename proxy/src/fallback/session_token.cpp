#include "fallback/session_token.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <charconv>
#include <stdexcept>

#include "support/hmac.hpp"
#include "wsbridge/base64.hpp"

namespace wsbridge::fallback {

namespace {

constexpr std::size_t kMacBytes = 16;  // of SHA-256's 32: 128 bits are plenty against forgery

template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  if (text.empty() || text.size() > 20) return std::nullopt;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// The next '.'-separated field of `rest`, taken off it.
std::string_view next_field(std::string_view& rest) {
  const auto dot = rest.find('.');
  const std::string_view field = rest.substr(0, dot);
  rest = dot == std::string_view::npos ? std::string_view{} : rest.substr(dot + 1);
  return field;
}

// `secret`, or when empty a random key of this process.
std::string key_from(std::string_view secret) {
  std::string key(secret);
  if (key.empty()) {
    key.resize(32);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), 32) != 1) {
      throw std::runtime_error("no random bytes for the fallback session key");
    }
  }
  return key;
}

}  // namespace

SessionTokens::SessionTokens(std::string instance, std::string_view secret)
    : instance_(std::move(instance)), hmac_(key_from(secret)) {}

std::string SessionTokens::mac(std::string_view instance, std::uint64_t connection,
                               std::int64_t expiry) const {
  const std::string message =
      std::string(instance) + '\n' + std::to_string(connection) + '\n' + std::to_string(expiry);
  return hmac_.base64url(message, kMacBytes);
}

std::string SessionTokens::issue(std::uint64_t connection,
                                 std::chrono::system_clock::time_point expiry) const {
  const std::int64_t seconds =
      std::chrono::duration_cast<std::chrono::seconds>(expiry.time_since_epoch()).count();
  return "v1." + base64url_encode(instance_) + "." + std::to_string(connection) + "." +
         std::to_string(seconds) + "." + mac(instance_, connection, seconds);
}

std::optional<SessionTokens::Named> SessionTokens::verify(
    std::string_view token, std::chrono::system_clock::time_point now) const {
  if (token.size() > 256) return std::nullopt;
  std::string_view rest = token;
  if (next_field(rest) != "v1") return std::nullopt;
  const auto instance = base64url_decode(next_field(rest));
  if (!instance || instance->empty()) return std::nullopt;
  const auto connection = parse_number<std::uint64_t>(next_field(rest));
  const auto expiry = parse_number<std::int64_t>(next_field(rest));
  const std::string_view presented = next_field(rest);
  if (!connection || !expiry || !rest.empty()) return std::nullopt;
  const std::string expected = mac(*instance, *connection, *expiry);
  if (presented.size() != expected.size() ||
      CRYPTO_memcmp(presented.data(), expected.data(), expected.size()) != 0) {
    return std::nullopt;
  }
  const std::int64_t now_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (now_seconds >= *expiry) return std::nullopt;
  return Named{*instance, *connection, *instance == instance_};
}

}  // namespace wsbridge::fallback
