// The `[fallback]` settings (docs/CONFIG.md): how the HTTP fallback transports behave.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include "wsbridge/stream_client.hpp"

namespace wsbridge::fallback {

// Another instance behind the same balancer, to which requests of its sessions are forwarded.
struct Peer {
  std::string url;   // as configured: http://host:port or https://host:port
  std::string host;  // the Host header: host:port
  std::shared_ptr<StreamEndpoint> endpoint;
};

struct Settings {
  bool enabled = true;
  std::string secret;  // shared by instances behind one balancer; empty: a key of this process
  std::size_t sse_byte_limit = 128 * 1024;       // a stream ends after this many bytes
  std::chrono::seconds heartbeat{15};            // SSE comment lines
  std::chrono::seconds poll_timeout{25};         // a poll with nothing to say answers then
  std::chrono::seconds reconnect_window{30};     // a session nothing carries lives this long
  std::size_t resume_buffer_bytes = 256 * 1024;  // sent messages kept for a resume, per session
  std::size_t max_post_bytes = 1024 * 1024;      // one POST's body
  // The POST bodies being received or applied at once, over all sessions (split among the
  // service threads, each getting at least max_post_bytes): what slow or stalled POSTs can hold.
  std::size_t post_bytes_in_flight = 64 * 1024 * 1024;
  std::chrono::seconds token_lifetime{24 * 3600};
  // By instance id ([server] instance_id of each).
  std::map<std::string, std::shared_ptr<const Peer>, std::less<>> peers;
};

}  // namespace wsbridge::fallback
