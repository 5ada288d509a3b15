// [cluster] (docs/CONFIG.md, docs/DEPLOY.md): how instances of wsbridge behind one balancer reach
// each other through the MQTT broker they share, for the admin API's cluster-wide pushes, closes
// and lists.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace wsbridge::cluster {

// MQTT wildcards never match a topic starting with '$' (MQTT 3.1.1 section 4.7.2), so no
// browser subscription to "#" sees these, and every ACL refuses them besides.
inline constexpr std::string_view kDefaultControlPrefix = "$wsbridge";

struct Settings {
  bool enabled = false;  // a [cluster] table is present
  std::string broker;    // "tcp://host:port" or "ssl://host:port"
  std::optional<std::string> username;
  std::optional<std::string> password;
  std::optional<std::string> ca_file;  // ssl:// brokers: the CA to verify them with
  std::string secret;                  // HMAC-SHA256 key of every control message (>= 32 bytes)
  std::string control_prefix = std::string(kDefaultControlPrefix);
  // How long GET /api/v1/connections?scope=cluster waits for the other instances' lists.
  std::chrono::milliseconds request_timeout{2000};
  // How often this instance says "up" again on its presence topic: the others stop counting an
  // instance not heard from for three of its intervals (presence_book.hpp).
  std::chrono::milliseconds presence_interval{30000};

  bool operator==(const Settings&) const = default;
};

}  // namespace wsbridge::cluster
