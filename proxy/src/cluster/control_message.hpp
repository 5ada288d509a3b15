// The control messages wsbridge instances pass each other through the broker (docs/DEPLOY.md):
// sealed with HMAC-SHA256 under the shared [cluster] secret, over the topic and the body, so an
// MQTT client that can publish on the control prefix still cannot forge one, nor move one to
// another topic; stamped with a time and a nonce, so a recorded one cannot be replayed.
//
// Payload: "<base64url MAC>.<JSON>", the JSON object holding "from" (the sender's instance id),
// "ts" (Unix milliseconds), "nonce" and the message's own fields.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

namespace wsbridge::cluster {

// Unix milliseconds, as "ts" holds them.
std::int64_t unix_ms(std::chrono::system_clock::time_point t);
// `bytes` random bytes in lower-case hex (a broker connection's epoch, a client id's tail).
std::string random_hex(std::size_t bytes);

// How far a message's time may be from ours (clocks of the instances are NTP-synced).
inline constexpr std::chrono::seconds kClockSkew{60};

class ControlSeal {
 public:
  ControlSeal(std::string secret, std::string instance);

  // `fields` plus from/ts/nonce, sealed for `topic`.
  std::string seal(std::string_view topic, nlohmann::json fields) const;

  // The fields of a genuine, fresh message on `topic` (never seen before, and sealed after this
  // seal was made: a restarted instance does not take a replay of what its predecessor saw);
  // nullopt otherwise,
  // with why in `problem` when given. Thread-safe. `fresh`: false for a retained message (an
  // instance's presence), which is as old as the instance and may be read again.
  std::optional<nlohmann::json> open(std::string_view topic, std::string_view payload,
                                     std::string* problem = nullptr, bool fresh = true);

  const std::string& instance() const { return instance_; }

 private:
  std::string mac(std::string_view topic, std::string_view json) const;
  bool first_sighting(const std::string& nonce, std::chrono::system_clock::time_point now);

  const std::string secret_;
  const std::string instance_;
  // Unix ms when this process began: a message sealed before cannot be meant for it (its nonce
  // may have been seen by the process before this one, whose memory is gone).
  const std::int64_t started_ms_;
  std::mutex mutex_;
  // The nonces of the messages accepted within twice the skew, oldest first (bounded).
  std::deque<std::pair<std::chrono::system_clock::time_point, std::string>> seen_order_;
  std::unordered_set<std::string> seen_;
};

}  // namespace wsbridge::cluster
