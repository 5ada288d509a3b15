// The admin REST API on the admin listener, for backends and operators:
//   POST   /api/v1/push              {"connection":ID | "user":NAME | "route":PATH, "data":..}
//   GET    /api/v1/connections       the open WebSocket sessions
//   DELETE /api/v1/connections/ID    closes one (1000 by default; ?code=&reason= to choose)
// Pure request handling over a SessionDirectory, so it is tested without sockets; the Server
// does the HTTP plumbing and the bearer token check.
#pragma once

#include <cstdint>
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

// What the admin API needs from the server (service thread).
class SessionDirectory {
 public:
  virtual std::vector<SessionInfo> list_sessions() const = 0;
  // Queues `frame` to every open session matching `target`; returns how many.
  virtual std::size_t push(const PushTarget& target, const Frame& frame) = 0;
  // Closes one session (after its queued frames); false when there is none with that id.
  virtual bool close_session(ConnectionId id, std::uint16_t code, const std::string& reason) = 0;

 protected:
  ~SessionDirectory() = default;
};

struct AdminReply {
  unsigned status = 200;
  std::string body;  // JSON
};

inline constexpr std::string_view kAdminApiPrefix = "/api/v1/";
inline constexpr std::size_t kMaxAdminBodyBytes = 1024 * 1024;

// `target` is the request path with its query. `method` is upper case ("GET", "POST", ...).
AdminReply handle_admin_api(std::string_view method, std::string_view target, std::string_view body,
                            SessionDirectory& sessions);

}  // namespace wsbridge
