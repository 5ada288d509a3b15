// Several shards listening on one port. lws 4.1.6 sets SO_REUSEPORT on a listening socket only
// when its own context has several service threads (LWS_MAX_SMP > 1; Debian builds it with 1), so
// LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE alone does nothing here. The executable interposes
// setsockopt() instead: while a Scope is active on the calling thread, the SO_REUSEADDR that lws
// sets on every new listening socket is followed by SO_REUSEPORT, before lws binds it.
//
// SO_REUSEPORT would also let a second wsbridge (same user) bind the same port and silently take
// half the connections; probe_exclusive() checks first that nobody listens there.
#pragma once

#include <cstdint>
#include <string>

namespace wsbridge::listen_share {

class Scope {
 public:
  explicit Scope(bool enabled);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  bool previous_;
};

// True when the calling thread is inside a Scope.
bool active();

// The claim of one address and port by this process (an abstract Unix socket name only one
// process can hold), released on destruction.
class PortClaim {
 public:
  PortClaim() = default;
  explicit PortClaim(int fd) : fd_(fd) {}
  PortClaim(PortClaim&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  PortClaim& operator=(PortClaim&& other) noexcept;
  ~PortClaim();

 private:
  int fd_ = -1;
};

// Claims address:port for this process (`claimed` holds it; two wsbridges starting at once would
// otherwise both pass the probe and both bind with SO_REUSEPORT), then binds (and closes) a
// socket without SO_REUSEPORT there: "" when the port is free for us, else why not (e.g. "address
// in use").
std::string probe_exclusive(const std::string& address, std::uint16_t port, PortClaim& claimed);

}  // namespace wsbridge::listen_share
