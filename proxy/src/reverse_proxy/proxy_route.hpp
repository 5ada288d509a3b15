// A [[proxy]] table (docs/PROXY.md): a path prefix whose requests wsbridge relays to a legacy
// HTTP backend, and whose WebSocket upgrades it relays to the backend's WebSocket server.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "auth/auth_config.hpp"
#include "http/http1.hpp"
#include "wsbridge/stream_client.hpp"

namespace wsbridge::reverse_proxy {

// How the Host header the backend gets is chosen.
enum class HostMode : std::uint8_t {
  kClient,   // the browser's, unchanged (the default: apps build their links from it)
  kBackend,  // the backend URL's host[:port]
  kFixed,    // ProxyRoute::host_value
};

struct ProxyRoute {
  std::string path;         // the prefix: "/" or "/segment[/segment...]" without a trailing slash
  std::string backend_url;  // as configured (http://, https://, ws://, wss://)
  http1::Url backend;       // parsed; ws:// and wss:// as http:// and https://
  std::shared_ptr<StreamEndpoint> endpoint;  // the backend's TCP (or TLS) streams
  // Which backend pool serves it: prefixes with the same backend, CAs and verification share
  // one (ProxyService::pool_for). Set with `endpoint`, not rebuilt for every request.
  std::string pool_key;
  bool http = true;           // plain requests are relayed (false for a ws:// or wss:// backend)
  bool websocket = true;      // upgrades are relayed (the WebSocket pass-through)
  bool strip_prefix = false;  // "/app/x?y" reaches the backend as "<base>/x?y"
  HostMode host_mode = HostMode::kClient;
  std::string host_value;        // kFixed
  bool forward_identity = true;  // X-Wsbridge-User, -Auth-Method, -Claims on every request
  // Headers backends trust from a proxy (wsbridge/header_rules.hpp, HeaderClass::kTrusted) that
  // clients may still send here, by canonical name; the others are dropped.
  std::vector<std::string> allow_client_headers;
  // Without an [proxy.auth] table the prefix is public; with one, every request and upgrade is
  // authenticated as a WebSocket route's upgrade would be (401/403 otherwise).
  bool has_auth = false;
  auth::RouteAuth auth;
  std::uint64_t max_body_bytes = 16ull * 1024 * 1024;  // request bodies; 413 beyond
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds response_timeout{std::chrono::seconds(60)};     // request sent → head
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};         // no byte either way
  std::chrono::milliseconds websocket_idle_timeout{std::chrono::hours(1)};  // 0: none
  std::size_t max_connections = 256;  // to the backend, over all shards (each a share)
  std::chrono::milliseconds keepalive_timeout{std::chrono::seconds(30)};  // idle backend conns
  std::string ca_file;  // https:// / wss:// backends: trust these CAs instead of the system's
  bool verify_backend = true;

  // Whether `request_path` (a target's path) is under this prefix: equal to it, or followed by
  // "/" (every path is under "/").
  bool covers(std::string_view request_path) const;
  // Whether a request of this kind under the prefix is relayed (else it is not the proxy's).
  bool relays(bool websocket_upgrade) const { return websocket_upgrade ? websocket : http; }
};

}  // namespace wsbridge::reverse_proxy
