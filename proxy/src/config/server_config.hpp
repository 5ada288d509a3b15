// The whole configuration of one wsbridge process, loaded and validated from TOML. Loading builds
// every route's adapter, so a config that loads is a config that can run.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/auth_config.hpp"
#include "cluster/cluster_settings.hpp"
#include "compression/compression_config.hpp"
#include "fallback/fallback_settings.hpp"
#include "handshake/trusted_proxies.hpp"
#include "http/http_client_pool.hpp"
#include "reverse_proxy/proxy_route.hpp"
#include "tls/server_certificates.hpp"
#include "wsbridge/adapter_registry.hpp"
#include "wsbridge/log.hpp"
#include "wsbridge/plugin.hpp"

namespace wsbridge {

struct ListenerConfig {
  std::string address;  // IPv4 or IPv6 literal
  std::uint16_t port = 0;
  CompressionConfig compression;  // routes may override it (RouteConfig::compression)
  auth::OriginPolicy origins;     // checked for every WebSocket upgrade on this listener
  // [listeners.auth]: the authentication of routes reached through this listener that have no
  // auth table of their own.
  std::optional<auth::RouteAuth> auth;
  // [listeners.tls]: wss:// and https:// on this port (docs/TLS.md). Null for ws:// and http://.
  std::shared_ptr<const tls::ServerCertificates> tls;
  std::vector<std::filesystem::path> tls_files;  // the files it was read from (tls.watch)
  // A plain listener that answers every request with 301 to https://<host>:<this port>.
  std::optional<std::uint16_t> redirect_to_https;

  // It asks TLS clients for a certificate ([listeners.tls] client_cert).
  bool verifies_client_certificates() const {
    return tls && tls->settings().client_cert != tls::ClientCertMode::kNone;
  }
};

// The admin listener: /metrics (and /healthz) for operators, never on a public listener.
struct AdminConfig {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;
  std::optional<std::string> token;      // when set, requests need "Authorization: Bearer <token>"
  std::vector<std::string> hosts;        // Host names it answers to besides addresses and localhost
  bool allow_api_without_token = false;  // the REST API on an admin listener without a token
};

// Process-wide limits, checked before the upgrade (503 when over).
struct LimitsConfig {
  std::size_t max_connections = 10000;
  std::size_t max_connections_per_ip = 1000;
  // TCP connections on the public listeners that carry no WebSocket (yet): requests, keep-alive,
  // fallback streams, proxied HTTP, connections that have sent nothing. Per client address.
  std::size_t max_http_connections_per_ip = 2000;  // unless set: 2 × max_connections_per_ip
  // The per-address limits count an IPv6 client by its network of this many bits (a host is
  // usually given a /64 and may use a new address of it for every connection).
  unsigned ipv6_prefix_length = 64;
  std::chrono::seconds handshake_timeout{10};  // for the TCP connection to complete its upgrade
  // What clients' input held before it is passed on may take at once (messages being reassembled,
  // adapters' partial packets, messages waiting for an upstream), split among the service threads.
  std::size_t inbound_bytes_in_flight = 256 * 1024 * 1024;
  // What the sessions nobody reads now (paused: they do not take what they are sent; fallback
  // sessions no request carries) may hold queued at once, split among the service threads: past
  // it the largest are closed (1013).
  std::size_t unread_output_bytes = 256 * 1024 * 1024;
};

struct RouteConfig {
  std::string path;
  std::string adapter_name;
  std::size_t max_message_bytes = 1024 * 1024;
  std::size_t max_queued_bytes = 16 * 1024 * 1024;  // per connection outbound queue bound
  std::size_t max_queued_messages = 10000;          // the same in messages
  // Past this many queued bytes Connection::send answers kQueuedOverHighWater (half of
  // max_queued_bytes unless configured).
  std::size_t queue_high_water_bytes = 8 * 1024 * 1024;
  // What happens to a client whose queue is full: close it with 1013, or drop its oldest
  // droppable frames (counted, and reported once it catches up).
  enum class SlowConsumer { kDisconnect, kDropOldest } slow_consumer = SlowConsumer::kDisconnect;
  std::chrono::milliseconds ping_interval{std::chrono::seconds(30)};
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  std::vector<std::string> subprotocols;  // Sec-WebSocket-Protocol values this route accepts
  double rate = 0;                        // messages per second per connection; 0: unlimited
  double burst = 0;                       // token bucket size
  auth::RouteAuth auth;
  bool require_client_cert = false;  // 403 without a verified TLS client certificate
  bool has_own_auth = false;         // an [routes.auth] table: it replaces the listener's
  CompressionOverrides compression;  // over the listener's
  bool fallback = true;              // reachable over the HTTP fallbacks too (docs/FALLBACK.md)
  std::shared_ptr<Adapter> adapter;
};

struct ServerConfig {
  std::string file;
  LogLevel log_level = LogLevel::kInfo;
  LogFormat log_format = LogFormat::kText;
  std::optional<AdminConfig> admin;
  std::optional<std::filesystem::path> static_dir;
  std::string index_file = "index.html";
  std::chrono::milliseconds shutdown_timeout{std::chrono::seconds(5)};
  // Service threads (shards), each with its own libwebsockets context serving every listener;
  // 0 ("auto") means one per online CPU (effective_threads()). Only a restart changes it.
  unsigned threads = 0;
  // This instance among several behind one balancer: in connection ids ("42@web-1"), log lines,
  // a metric, fallback session tokens and cluster control messages. Default (filled in when
  // loaded): the host name and the process id. Only a restart changes it.
  std::string instance_id;
  // SIGTERM and POST /api/v1/drain: how long /healthz says 503 before the clients are closed
  // with 1012 (docs/DEPLOY.md: at least the balancer's health-check interval times its fall
  // count), and the spread of the reconnection delay each closed client is told.
  std::chrono::milliseconds drain_delay{0};
  std::chrono::milliseconds reconnect_spread{std::chrono::seconds(10)};
  cluster::Settings cluster;  // [cluster]: pushes, closes and lists across the instances
  // The balancers whose X-Forwarded-For names the client (per-address limits, logs, the API).
  TrustedProxies trusted_proxies;
  LimitsConfig limits;
  fallback::Settings fallback;  // the HTTP fallback transports
  auth::AuthSettings auth;
  std::vector<ListenerConfig> listeners;
  // The HTTP client adapters were given (RouteContext); bound to the service loop by the Server.
  std::shared_ptr<LwsHttpClient> http_client = std::make_shared<LwsHttpClient>();
  // Declared before `routes` so adapters are destroyed before the kinds that built them.
  std::vector<std::unique_ptr<AdapterKind>> kinds;
  std::vector<RouteConfig> routes;

  // [[proxy]]: prefixes relayed to legacy HTTP backends (docs/PROXY.md), longest first.
  std::vector<std::shared_ptr<const reverse_proxy::ProxyRoute>> proxies;
  const RouteConfig* find_route(std::string_view path) const;
  // The [[proxy]] that relays a request for `raw_path` (a target's path as sent; an upgrade or
  // not): the longest prefix covering its matching path (decoded, slashes merged:
  // reverse_proxy/request_path.hpp), unless the core answers that path itself (serves_itself)
  // or that prefix does not relay this kind of request. Null: not the proxy's.
  const reverse_proxy::ProxyRoute* proxy_for(std::string_view raw_path, bool upgrade) const;
  // The core answers `path` itself: /healthz, /_wsbridge/..., or a WebSocket route's path.
  bool serves_itself(std::string_view path) const;
  // `threads`, with "auto" resolved to the CPUs this process may run on.
  unsigned effective_threads() const;
  bool has_tls() const {
    for (const auto& l : listeners) {
      if (l.tls) return true;
    }
    return false;
  }
  // Some listener asks TLS clients for a certificate.
  bool verifies_client_certificates() const;
};

inline constexpr unsigned kMaxThreads = 256;

// Throws ConfigError (with file:line:column) for every problem: syntax, unknown keys, wrong types,
// bad values, unknown adapters, duplicate paths, and the adapters' own validation errors.
ServerConfig load_config_file(const std::string& file, const AdapterRegistry& registry);
ServerConfig parse_config(std::string_view text, const std::string& file,
                          const AdapterRegistry& registry);

// Why `path` cannot be a route's or a proxy's path, or nullopt when it can.
std::optional<std::string> route_path_problem(const std::string& path);

// Paths reserved for the core's own HTTP endpoints.
inline constexpr std::string_view kHealthPath = "/healthz";
// The HTTP fallback transports' endpoints (docs/FALLBACK.md): no route may be under it.
inline constexpr std::string_view kFallbackPrefix = "/_wsbridge/";

}  // namespace wsbridge
