#include "fallback/session_token.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <charconv>
#include <stdexcept>

#include "support/hmac.hpp"
#include "wsbridge/base64.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge::fallback {

namespace {

constexpr std::size_t kMacBytes = 16;  // of SHA-256's 32: 128 bits are plenty against forgery

// Only the one way issue() writes a number: "042" or "+42" would be other tokens for the same
// session.
template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text.front() == '0')) {
    return std::nullopt;
  }
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

bool same_mac(std::string_view presented, std::string_view expected) {
  return presented.size() == expected.size() &&
         CRYPTO_memcmp(presented.data(), expected.data(), expected.size()) == 0;
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

constexpr std::size_t kRunDigits = 16;

// A process's run: 8 random bytes in lower-case hex.
std::string random_run() {
  unsigned char bytes[kRunDigits / 2];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    throw std::runtime_error("no random bytes for the fallback session tokens");
  }
  return text::lower_hex(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

bool is_run(std::string_view field) {
  return field.size() == kRunDigits &&
         field.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

}  // namespace

SessionTokens::SessionTokens(std::string instance, std::string_view secret, std::string run)
    : instance_(std::move(instance)),
      run_(run.empty() ? random_run() : std::move(run)),
      hmac_(key_from(secret)) {
  if (!is_run(run_)) throw std::invalid_argument("a fallback token run is 16 hex digits");
}

std::string SessionTokens::mac(std::string_view instance, std::string_view run,
                               std::uint64_t connection, std::int64_t expiry,
                               const TokenBinding& binding) const {
  // (Newline-separated: no field holds one; the route is a configured path, the certificate hex.)
  const std::string message = "token\n" + std::string(instance) + '\n' + std::string(run) + '\n' +
                              std::to_string(connection) + '\n' + std::to_string(expiry) + '\n' +
                              std::string(binding.route) + '\n' + std::string(binding.client_cert);
  return hmac_.base64url(message, kMacBytes);
}

std::string SessionTokens::issue(std::uint64_t connection,
                                 std::chrono::system_clock::time_point expiry,
                                 const TokenBinding& binding) const {
  const std::int64_t seconds =
      std::chrono::duration_cast<std::chrono::seconds>(expiry.time_since_epoch()).count();
  return "v3." + base64url_encode(instance_) + "." + run_ + "." + std::to_string(connection) + "." +
         std::to_string(seconds) + "." + mac(instance_, run_, connection, seconds, binding);
}

std::string SessionTokens::vouch(std::string_view token, std::string_view client_cert) const {
  const std::string message = "vouch\n" + std::string(token) + '\n' + std::string(client_cert);
  return std::string(client_cert) + "." + hmac_.base64url(message, kMacBytes);
}

std::optional<std::string> SessionTokens::vouched(std::string_view token,
                                                  std::string_view vouch) const {
  const auto dot = vouch.rfind('.');
  if (dot == std::string_view::npos || vouch.size() > 256) return std::nullopt;
  const std::string_view client_cert = vouch.substr(0, dot);
  const std::string expected = this->vouch(token, client_cert);
  if (!same_mac(vouch, expected)) return std::nullopt;
  return std::string(client_cert);
}

std::optional<SessionTokens::Named> SessionTokens::verify(std::string_view token,
                                                          std::chrono::system_clock::time_point now,
                                                          const TokenBinding& binding) const {
  if (token.size() > 256) return std::nullopt;
  std::string_view rest = token;
  if (next_field(rest) != "v3") return std::nullopt;
  const std::string_view instance_field = next_field(rest);
  const auto instance = base64url_decode(instance_field);
  // (Canonical only, as for the numbers: unused trailing bits would give one session many tokens.)
  if (!instance || instance->empty() || base64url_encode(*instance) != instance_field) {
    return std::nullopt;
  }
  const std::string_view run = next_field(rest);
  const auto connection = parse_number<std::uint64_t>(next_field(rest));
  const auto expiry = parse_number<std::int64_t>(next_field(rest));
  const std::string_view presented = next_field(rest);
  if (!is_run(run) || !connection || !expiry || !rest.empty()) return std::nullopt;
  if (!same_mac(presented, mac(*instance, run, *connection, *expiry, binding))) {
    return std::nullopt;
  }
  const std::int64_t now_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (now_seconds >= *expiry) return std::nullopt;
  const bool mine = *instance == instance_;
  // This instance's, from a run before this one: its number may be another session's now.
  if (mine && run != run_) return std::nullopt;
  return Named{*instance, *connection, mine};
}

}  // namespace wsbridge::fallback
