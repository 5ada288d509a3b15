// What the shard keeps of an upgrade or a fallback open on its way to becoming a session: held
// for the route's admission check, admitted, or accepted and waiting for ESTABLISHED. Plain state;
// the Shard (shard.hpp) owns every instance and names these types as its own.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "auth/authenticator.hpp"
#include "compression/negotiation.hpp"
#include "config/server_config.hpp"
#include "fallback/fallback_transport.hpp"
#include "fallback/response_channel.hpp"
#include "server/connection_slots.hpp"
#include "wsbridge/plugin.hpp"

typedef struct ssl_st SSL;
struct lws_vhost;

namespace wsbridge::upgrade_states {

// An upgrade whose socket is out of lws' hands while its route's adapter decides (upgrade_hold).
struct HeldUpgrade {
  int fd = -1;
  std::string request_bytes;
  lws_vhost* vhost = nullptr;
  SteadyClock::time_point since;
  auth::AuthDecision decision;
  std::optional<AdmissionResult> verdict;  // set when the adapter answered
  std::optional<ConnectionSlots::Slot> slot;
  SSL* ssl = nullptr;  // wss://: the TLS session, kept (tls/session_handover.hpp)
};
struct Admitted {
  AdmissionResult verdict;
  auth::AuthDecision decision;
  std::optional<ConnectionSlots::Slot> slot;
};
// An upgrade the core accepted, between CONFIRM_UPGRADE and ESTABLISHED.
struct PendingUpgrade {
  auth::AuthDecision decision;
  std::optional<ConnectionSlots::Slot> slot;
  std::optional<std::string> mqtt_refusal;  // an MQTT client to refuse in MQTT (mqtt_refusal.hpp)
  NegotiatedCompression compression;        // answered in the 101 (ADD_HEADERS)
  // An upgrade that resumes fallback session `resume` from message `resume_last` + 1.
  std::optional<ConnectionId> resume;
  std::uint64_t resume_last = 0;
};
// A fallback open whose checks passed (held_opens_: waiting for its admission check).
struct HeldOpen {
  std::shared_ptr<const ServerConfig> config;  // keeps `route` alive
  const RouteConfig* route = nullptr;
  std::size_t listener = 0;
  auth::AuthDecision decision;
  std::optional<ConnectionSlots::Slot> slot;
  fallback::CarrierKind kind = fallback::CarrierKind::kStream;
  std::shared_ptr<fallback::ResponseChannel> channel;
  std::string uri;
  std::string peer;
  std::string client_cert;  // the verified certificate's fingerprint ("" none): in the token
  SteadyClock::time_point since;
};

}  // namespace wsbridge::upgrade_states
