// The admin REST API on the admin listener, for backends and operators:
//   POST   /api/v1/push              {"connection":ID | "user":NAME | "route":PATH, "data":..}
//   GET    /api/v1/connections       the open sessions (?scope=cluster: every instance's)
//   DELETE /api/v1/connections/ID    closes one (1000 by default; ?code=&reason= to choose)
//   POST   /api/v1/drain             /healthz turns 503, then every client is closed with 1012
// A connection id is "<number>@<instance_id>" ("42@web-1"), unique across the instances; a bare
// number names one of this instance. With [cluster], pushes by user or route reach every
// instance, and a push or close by id reaches its owner (docs/DEPLOY.md).
// Pure request handling over a SessionDirectory and a ClusterLink, so it is tested without
// sockets; the Server does the HTTP plumbing and the bearer token check.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wsbridge/frame.hpp"
#include "wsbridge/plugin.hpp"

namespace wsbridge {

struct SessionInfo {
  ConnectionId id = 0;
  std::string user;
  std::string route;
  std::string remote_address;
  double since_unix_seconds = 0;
  std::uint64_t messages_in = 0;
  std::uint64_t messages_out = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
};

struct PushTarget {
  enum class Kind : std::uint8_t { kConnection, kUser, kRoute } kind = Kind::kConnection;
  ConnectionId connection = 0;
  std::string name;  // user or route path
};

// How a push fared with the sessions it was for.
struct PushOutcome {
  std::size_t queued = 0;      // sessions that have it queued
  std::size_t queue_full = 0;  // sessions whose queue was full (SendResult::kDropped)
};

// What the admin API needs from the server (service thread).
class SessionDirectory {
 public:
  virtual std::vector<SessionInfo> list_sessions() const = 0;
  // Queues `frame` to every open session matching `target`.
  virtual PushOutcome push(const PushTarget& target, const Frame& frame) = 0;
  // Closes one session (after its queued frames); false when there is none with that id.
  virtual bool close_session(ConnectionId id, std::uint16_t code, const std::string& reason) = 0;

 protected:
  ~SessionDirectory() = default;
};

struct AdminReply {
  unsigned status = 200;
  std::string body;  // JSON
  // Set when the answer comes later (a cluster-wide list): called once, with the function that
  // takes the answer (from any thread, once).
  std::function<void(std::function<void(AdminReply)>)> later;
};

// Every instance's sessions, as gathered within [cluster] request_timeout.
struct ClusterListing {
  nlohmann::json connections = nlohmann::json::array();  // the other instances' entries
  std::vector<std::string> answered;                     // the instances that answered
  std::vector<std::string> missing;  // known to be up (their presence) and silent
};

// What became of a request for one other instance (ClusterLink::push_to, close_on).
enum class Forwarded : std::uint8_t {
  kSent,         // handed to the broker, for the instance to apply
  kChannelDown,  // not handed to the broker (the control channel is down): nobody gets it
  kNotUp,        // no instance of that name is up (nobody would get it)
};

// The other instances, through the broker ([cluster]). Any thread; never blocks.
class ClusterLink {
 public:
  // A push request (its JSON body) for every other instance. False when it could not be handed
  // to the broker (the control channel is down): nobody will get it.
  virtual bool push_everywhere(const nlohmann::json& request) = 0;
  // A push request for one instance, or a close of one of its connections.
  virtual Forwarded push_to(const std::string& instance, const nlohmann::json& request) = 0;
  virtual Forwarded close_on(const std::string& instance, ConnectionId id, std::uint16_t code,
                             const std::string& reason) = 0;
  // Asks every other instance for its sessions; `done` is called once (any thread). False, and
  // `done` never called, when the control channel is down: a list of this instance alone would
  // read as a cluster of one.
  virtual bool gather_sessions(std::function<void(ClusterListing)> done) = 0;

 protected:
  ~ClusterLink() = default;
};

struct AdminContext {
  SessionDirectory& sessions;
  std::string instance;            // this instance's id
  ClusterLink* cluster = nullptr;  // null: this instance alone
  std::function<void()> drain;     // POST /api/v1/drain; null: not offered
};

// "42@web-1" (or "42" for this instance): the number and the instance.
struct GlobalConnectionId {
  ConnectionId number = 0;
  std::string instance;
};
std::optional<GlobalConnectionId> parse_connection_id(std::string_view text,
                                                      std::string_view this_instance);
std::string format_connection_id(ConnectionId number, std::string_view instance);

inline constexpr std::string_view kAdminApiPrefix = "/api/v1/";
inline constexpr std::size_t kMaxAdminBodyBytes = 1024 * 1024;

// `target` is the request path with its query. `method` is upper case ("GET", "POST", ...).
AdminReply handle_admin_api(std::string_view method, std::string_view target, std::string_view body,
                            const AdminContext& context);

// A push request another instance passed on: applied to this instance's sessions only.
void apply_forwarded_push(const nlohmann::json& request, SessionDirectory& sessions,
                          const std::string& instance);

// This instance's sessions as the list's JSON entries.
nlohmann::json session_entries(const std::vector<SessionInfo>& sessions, std::string_view instance);

}  // namespace wsbridge
