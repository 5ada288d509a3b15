// [[proxy]] tables: their keys, their place in the one path space (docs/PROXY.md), and the
// backend's stream endpoint, resolved here so that a config that loads can reach its backends.
#include "config/proxy_keys.hpp"

#include <algorithm>

#include "config/route_keys.hpp"
#include "config/server_config.hpp"
#include "reverse_proxy/request_path.hpp"
#include "stream/lws_stream_client.hpp"
#include "wsbridge/header_rules.hpp"

namespace wsbridge {

namespace {

using namespace std::chrono_literals;
using reverse_proxy::HostMode;
using reverse_proxy::ProxyRoute;

// ws:// and wss:// name the same servers as http:// and https://; only upgrades go there.
void read_backend(ConfigTable& t, ProxyRoute& route) {
  route.backend_url = t.required_string("backend");
  std::string url = route.backend_url;
  if (url.starts_with("ws://")) {
    url = "http://" + url.substr(5);
    route.http = false;
  } else if (url.starts_with("wss://")) {
    url = "https://" + url.substr(6);
    route.http = false;
  }
  std::string error;
  auto parsed = http1::parse_url(url, error);
  if (!parsed) {
    t.fail_at("backend", "'backend' \"" + route.backend_url + "\": " + error +
                             " (http://, https://, ws:// or wss://host[:port][/path])");
  }
  route.backend = *parsed;
  if (route.backend.path == "/") route.backend.path.clear();
}

void read_timeouts(ConfigTable& t, ProxyRoute& route) {
  if (auto v = t.duration("connect_timeout", 10ms, 10min)) route.connect_timeout = *v;
  if (auto v = t.duration("response_timeout", 10ms, 24h)) route.response_timeout = *v;
  if (auto v = t.duration("idle_timeout", 10ms, 24h)) route.idle_timeout = *v;
  if (auto v = t.duration("websocket_idle_timeout", 0ms, 7 * 24h)) {
    route.websocket_idle_timeout = *v;
  }
  if (auto v = t.duration("keepalive_timeout", 0ms, 1h)) route.keepalive_timeout = *v;
}

// Headers backends believe from a proxy (X-Real-IP, X-Original-URL, Remote-User...) are dropped
// from clients unless listed here; X-Forwarded-For, -Proto, -Host and Forwarded are always the
// proxy's own.
void read_allowed_client_headers(ConfigTable& t, ProxyRoute& route) {
  const auto allowed = t.string_array("allow_client_headers");
  if (!allowed) return;
  for (const auto& name : *allowed) {
    const std::string canonical = http::canonical_header_name(name);
    const bool forwarding = canonical == "x-forwarded-proto" || canonical == "x-forwarded-host" ||
                            canonical == "forwarded";
    if (http::classify_header(name) != http::HeaderClass::kTrusted || forwarding) {
      t.fail_at("allow_client_headers",
                "'allow_client_headers' lists \"" + name + "\", which is " +
                    (forwarding || http::classify_header(name) == http::HeaderClass::kReserved
                         ? "set by wsbridge: no client may set it"
                         : "not dropped by default: nothing to allow"));
    }
    route.allow_client_headers.push_back(canonical);
  }
}

void read_host_header(ConfigTable& t, ProxyRoute& route) {
  const auto value = t.string("host_header");
  if (!value || *value == "client") return;
  if (*value == "backend") {
    route.host_mode = HostMode::kBackend;
    return;
  }
  if (value->empty() || !safe_header_value(*value) ||
      value->find_first_of(" \t/") != std::string::npos) {
    t.fail_at("host_header", "'host_header' must be \"client\", \"backend\" or a host[:port]");
  }
  route.host_mode = HostMode::kFixed;
  route.host_value = *value;
}

void connect_backend(ConfigTable& t, ProxyRoute& route) {
  StreamOptions options;
  options.url = std::string(route.backend.tls ? "ssl://" : "tcp://") +
                (route.backend.host.find(':') != std::string::npos ? "[" + route.backend.host + "]"
                                                                   : route.backend.host) +
                ":" + std::to_string(route.backend.port);
  options.ca_file = route.ca_file;
  options.verify_server = route.verify_backend;
  options.connect_timeout = route.connect_timeout;
  try {
    route.endpoint = LwsStreamClient::instance().endpoint(options);
    route.pool_key = options.url + "|" + route.ca_file + "|" + (route.verify_backend ? "v" : "n");
  } catch (const std::invalid_argument& e) {
    t.fail_at(route.ca_file.empty() ? "backend" : "ca_file", e.what());
  }
}

}  // namespace

void read_proxy_tables(ConfigTable& top, ServerConfig& config) {
  const std::filesystem::path config_dir = std::filesystem::path(config.file).parent_path();
  for (auto& t : top.array_of_tables("proxy")) {
    auto route = std::make_shared<ProxyRoute>();
    route->path = t.required_string("path");
    if (route->path != "/") {
      if (auto problem = route_path_problem(route->path)) {
        t.fail_at("path", "proxy path \"" + route->path + "\" " + *problem);
      }
      if (route->path.ends_with('/')) {
        t.fail_at("path", "proxy path \"" + route->path +
                              "\" must not end with '/' (it covers what follows it anyway)");
      }
      if (route->path.find(';') != std::string::npos) {
        t.fail_at("path", "proxy path \"" + route->path +
                              "\" must not contain ';': requests are matched without a "
                              "segment's ;parameters, as Java servers read them");
      } else if (reverse_proxy::matching_path(route->path) != route->path) {
        t.fail_at("path", "proxy path \"" + route->path +
                              "\" would never match: requests are matched decoded (write \"" +
                              reverse_proxy::matching_path(route->path) +
                              "\"), and without a segment's trailing dots, as Windows servers "
                              "read them");
      }
    }
    if (route->path == kHealthPath) {
      t.fail_at("path", "proxy path \"" + route->path + "\" is the health endpoint");
    }
    if (route->path.starts_with(kFallbackPrefix) || route->path + "/" == kFallbackPrefix) {
      t.fail_at("path", "proxy path \"" + route->path + "\" is under " +
                            std::string(kFallbackPrefix) +
                            ", which the HTTP fallback transports reserve");
    }
    for (const auto& other : config.proxies) {
      if (other->path == route->path) {
        t.fail_at("path", "duplicate proxy path \"" + route->path + "\"");
      }
    }
    read_backend(t, *route);
    route->strip_prefix = t.boolean("strip_prefix").value_or(false);
    read_host_header(t, *route);
    route->websocket = t.boolean("websocket").value_or(true);
    if (!route->http && !route->websocket) {
      t.fail_at("websocket",
                "a ws:// or wss:// backend only takes WebSocket upgrades: "
                "'websocket = false' leaves it nothing");
    }
    route->forward_identity = t.boolean("forward_identity").value_or(true);
    read_allowed_client_headers(t, *route);
    if (auto v = t.byte_size("max_body_bytes", 0, 1ull << 40)) route->max_body_bytes = *v;
    read_timeouts(t, *route);
    if (auto v = t.integer("max_connections", 1, 1'000'000)) {
      route->max_connections = static_cast<std::size_t>(*v);
    }
    if (auto ca = t.string("ca_file")) {
      route->ca_file = std::filesystem::path(*ca).is_absolute() ? *ca : (config_dir / *ca).string();
    }
    route->verify_backend = t.boolean("verify_backend").value_or(true);
    if (auto a = t.table("auth")) {
      route->has_auth = true;
      route->auth = auth::parse_route_auth(*a, config.auth);
      if (route->auth.client_cert && !config.verifies_client_certificates()) {
        a->fail_at("client_cert", no_client_certificates(route->path));
      }
      a->reject_unknown_keys();
    }
    connect_backend(t, *route);
    t.reject_unknown_keys();
    config.proxies.push_back(std::move(route));
  }
  // Longest prefix first: find_proxy takes the first that covers a path.
  std::stable_sort(config.proxies.begin(), config.proxies.end(),
                   [](const auto& a, const auto& b) { return a->path.size() > b->path.size(); });
}

}  // namespace wsbridge
