#include "cluster/control_message.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <stdexcept>

#include "support/hmac.hpp"
#include "wsbridge/base64.hpp"
#include "wsbridge/bounded_json.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge::cluster {

namespace {

// Past this many remembered nonces the oldest go early: a flood can shorten the replay window
// but never grow the memory.
constexpr std::size_t kMaxRemembered = 200'000;

}  // namespace

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return text::lower_hex(raw);
}

ControlSeal::ControlSeal(std::string secret, std::string instance)
    : secret_(std::move(secret)),
      instance_(std::move(instance)),
      started_ms_(unix_ms(std::chrono::system_clock::now())) {}

std::string ControlSeal::mac(std::string_view topic, std::string_view json) const {
  std::string input;
  input.reserve(topic.size() + 1 + json.size());
  input.append(topic).push_back('\n');
  input.append(json);
  return hmac_sha256_base64url(secret_, input);
}

std::string ControlSeal::seal(std::string_view topic, nlohmann::json fields) const {
  unsigned char nonce[16];
  if (RAND_bytes(nonce, sizeof nonce) != 1) throw std::runtime_error("RAND_bytes failed");
  fields["from"] = instance_;
  fields["ts"] = unix_ms(std::chrono::system_clock::now());
  fields["nonce"] = base64url_encode(std::string_view(reinterpret_cast<const char*>(nonce), 16));
  const std::string json = fields.dump();
  return mac(topic, json) + "." + json;
}

std::optional<nlohmann::json> ControlSeal::open(std::string_view topic, std::string_view payload,
                                                std::string* problem, bool fresh) {
  auto refuse = [&](const char* why) -> std::optional<nlohmann::json> {
    if (problem != nullptr) *problem = why;
    return std::nullopt;
  };
  const auto dot = payload.find('.');
  if (dot == std::string_view::npos) return refuse("not a sealed control message");
  const std::string expected = mac(topic, payload.substr(dot + 1));
  const std::string_view given = payload.substr(0, dot);
  if (given.size() != expected.size() ||
      CRYPTO_memcmp(given.data(), expected.data(), expected.size()) != 0) {
    return refuse("bad signature");
  }
  auto doc = bounded_json::parse(payload.substr(dot + 1));
  if (!doc.is_object()) return refuse("not a JSON object");
  const auto from = doc.find("from");
  const auto ts = doc.find("ts");
  const auto nonce = doc.find("nonce");
  if (from == doc.end() || !from->is_string() || ts == doc.end() || !ts->is_number_integer() ||
      nonce == doc.end() || !nonce->is_string()) {
    return refuse("missing from, ts or nonce");
  }
  if (!fresh) return doc;
  const auto now = std::chrono::system_clock::now();
  const std::int64_t skew = ts->get<std::int64_t>() - unix_ms(now);
  const std::int64_t limit = std::chrono::milliseconds(kClockSkew).count();
  if (skew > limit || skew < -limit) {
    return refuse("stale or from the future");
  }
  if (ts->get<std::int64_t>() < started_ms_) return refuse("sealed before this instance started");
  if (!first_sighting(nonce->get<std::string>(), now)) return refuse("replayed");
  return doc;
}

bool ControlSeal::first_sighting(const std::string& nonce,
                                 std::chrono::system_clock::time_point now) {
  std::lock_guard lock(mutex_);
  // A nonce only needs remembering while its message could still pass the time check.
  while (!seen_order_.empty() &&
         (now - seen_order_.front().first > 2 * kClockSkew || seen_.size() >= kMaxRemembered)) {
    seen_.erase(seen_order_.front().second);
    seen_order_.pop_front();
  }
  if (!seen_.insert(nonce).second) return false;
  seen_order_.emplace_back(now, nonce);
  return true;
}

}  // namespace wsbridge::cluster
