#include "config/server_config.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>

#include "config/compression_keys.hpp"
#include "config/fallback_keys.hpp"
#include "config/listen_endpoints.hpp"
#include "config/proxy_keys.hpp"
#include "config/route_keys.hpp"
#include "config/scale_out_keys.hpp"
#include "config/tls_keys.hpp"
#include "handshake/ip_address.hpp"
#include "reverse_proxy/request_path.hpp"
#include "stream/lws_stream_client.hpp"
#include "wsbridge/log.hpp"
#include "wsbridge/text.hpp"
#include "wsbridge/utf8.hpp"

namespace wsbridge {

namespace {

using namespace std::chrono_literals;
using listen_endpoints::check_endpoints;
using listen_endpoints::Endpoint;
using listen_endpoints::endpoint;

ListenerConfig read_listener(ConfigTable& t, const auth::AuthSettings& auth_settings,
                             const std::filesystem::path& config_dir) {
  ListenerConfig l;
  l.address = t.string("address").value_or("127.0.0.1");
  if (!is_ip_literal(l.address)) {
    t.fail_at("address", "'address' in " + t.name() +
                             " must be an IPv4 or IPv6 address such as "
                             "\"127.0.0.1\", \"0.0.0.0\", \"::1\" or \"::\", not \"" +
                             l.address + "\"");
  }
  if (!t.contains("port")) t.fail("missing required key 'port' in " + t.name());
  l.port = static_cast<std::uint16_t>(*t.integer("port", 1, 65535));
  l.compression = read_compression_keys(t, true).over(CompressionConfig{});
  l.origins = auth::parse_origin_policy(t);
  if (auto a = t.table("auth")) l.auth = auth::parse_route_auth(*a, auth_settings);
  if (auto redirect = t.integer("redirect_to_https", 1, 65535)) {
    l.redirect_to_https = static_cast<std::uint16_t>(*redirect);
  }
  if (auto tls_table = t.table("tls")) {
    if (l.redirect_to_https) {
      t.fail_at("redirect_to_https",
                "a listener with a [listeners.tls] table is https already: "
                "'redirect_to_https' belongs on a plain listener");
    }
    ListenerTls parsed =
        read_tls_table(*tls_table, config_dir, l.address + ":" + std::to_string(l.port));
    tls_table->reject_unknown_keys();
    l.tls = std::move(parsed.certificates);
    l.tls_files = std::move(parsed.files);
  }
  if (l.auth && l.auth->client_cert && !l.verifies_client_certificates()) {
    t.table("auth")->fail_at(
        "client_cert", "'client_cert = true' in " + t.name() +
                           ".auth, but this listener verifies no client certificate: add "
                           "'client_ca_file' to its [listeners.tls] table (docs/TLS.md, mTLS)");
  }
  return l;
}

}  // namespace

std::optional<std::string> route_path_problem(const std::string& path) {
  if (path.empty() || path.front() != '/') return "must start with '/'";
  if (path.size() > 255) return "must be at most 255 characters";
  for (const char c : path) {
    // Bytes from 0x80 on are UTF-8, checked whole below: a browser sends "/café" as
    // "/caf%C3%A9", which lws decodes back to these bytes before the route is looked up.
    if (c == ' ' || text::is_ascii_control(c)) return "must be printable without spaces";
    if (c == '?' || c == '#') return "must not contain '?' or '#'";
  }
  if (!is_valid_utf8(path)) return "must be valid UTF-8";
  // Line and paragraph separators, bidirectional overrides and C1 controls: a path that shows
  // as something other than what it matches.
  if (escape_control_characters(path) != path) return "must not contain control characters";
  if (path.find("/../") != std::string::npos || path.find("/./") != std::string::npos ||
      path.ends_with("/..") || path.ends_with("/.")) {
    return "must not contain '.' or '..' segments";
  }
  if (path.find("//") != std::string::npos) return "must not contain '//'";
  return std::nullopt;
}

const RouteConfig* ServerConfig::find_route(std::string_view path) const {
  for (const auto& route : routes) {
    if (route.path == path) return &route;
  }
  return nullptr;
}

const reverse_proxy::ProxyRoute* ServerConfig::proxy_for(std::string_view raw_path,
                                                         bool upgrade) const {
  if (proxies.empty()) return nullptr;
  // As the backend will read it (request_path.hpp): "//admin" and "/%61dmin" are under "/admin".
  const std::string path = reverse_proxy::matching_path(raw_path);
  if (serves_itself(path)) return nullptr;
  for (const auto& proxy : proxies) {
    if (proxy->covers(path)) return proxy->relays(upgrade) ? proxy.get() : nullptr;
  }
  return nullptr;
}

bool ServerConfig::serves_itself(std::string_view path) const {
  return path == kHealthPath || path.starts_with(kFallbackPrefix) ||
         path == kFallbackPrefix.substr(0, kFallbackPrefix.size() - 1) ||
         find_route(path) != nullptr;
}

bool ServerConfig::verifies_client_certificates() const {
  return std::any_of(listeners.begin(), listeners.end(),
                     [](const ListenerConfig& l) { return l.verifies_client_certificates(); });
}

unsigned ServerConfig::effective_threads() const {
  if (threads != 0) return threads;
  // The CPUs this process may run on (taskset, cgroup cpusets), not every CPU the machine has.
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  const int n = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
  return static_cast<unsigned>(std::clamp(n, 1, static_cast<int>(kMaxThreads)));
}

ServerConfig parse_config(std::string_view text, const std::string& file,
                          const AdapterRegistry& registry) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(file));
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    throw ConfigError(SourcePosition{file, begin.line, begin.column},
                      "syntax error: " + std::string(e.description()));
  }

  ServerConfig config;
  config.file = file;
  const std::filesystem::path config_dir =
      std::filesystem::absolute(std::filesystem::path(file)).parent_path();
  ConfigTable top(root, file, "the top level");

  if (auto server = top.table("server")) {
    if (auto level = server->one_of("log_level", kLogLevelNames)) config.log_level = *level;
    if (auto format = server->one_of<LogFormat>(
            "log_format", {{"text", LogFormat::kText}, {"json", LogFormat::kJson}})) {
      config.log_format = *format;
    }
    if (auto dir = server->string("static_dir")) {
      // ("" would be the config file's own directory: its secrets served to anyone.)
      if (dir->empty()) {
        server->fail_at("static_dir",
                        "'static_dir' in [server] is empty: leave it out to serve no files");
      }
      std::filesystem::path p(*dir);
      if (p.is_relative()) p = config_dir / p;
      std::error_code ec;
      const auto status = std::filesystem::status(p, ec);
      if (!std::filesystem::is_directory(status)) {
        const int why = ec                                                       ? ec.value()
                        : status.type() == std::filesystem::file_type::not_found ? ENOENT
                                                                                 : ENOTDIR;
        server->fail_at("static_dir", "'static_dir' in [server]: " + p.string() +
                                          " is not a readable directory: " + text::errno_text(why));
      }
      config.static_dir = std::filesystem::weakly_canonical(p);
    }
    if (auto index = server->string("index_file")) {
      if (index->empty() || index->find('/') != std::string::npos) {
        server->fail_at("index_file", "'index_file' in [server] must be a plain file name");
      }
      config.index_file = *index;
    }
    if (auto timeout = server->duration("shutdown_timeout", 0ms, 10min)) {
      config.shutdown_timeout = *timeout;
    }
    if (server->contains("threads")) {
      // "auto" (the online CPUs) or a number of service threads (shards).
      if (server->raw().get("threads")->is_string()) {
        if (server->string("threads") != "auto") {
          server->fail_at("threads",
                          "'threads' in [server] must be \"auto\" or a number of "
                          "threads from 1 to " +
                              std::to_string(kMaxThreads));
        }
        config.threads = 0;
      } else if (auto n = server->integer("threads", 1, kMaxThreads)) {
        config.threads = static_cast<unsigned>(*n);
      }
    }
    read_instance_keys(*server, config);
    server->reject_unknown_keys();
  }
  // (Before any route asks for a backend: each backend gets a pool per shard.)
  config.http_client->set_shards(config.effective_threads());

  if (auto limits = top.table("limits")) {
    if (auto v = limits->integer("max_connections", 1, 10'000'000)) {
      config.limits.max_connections = static_cast<std::size_t>(*v);
    }
    if (auto v = limits->integer("max_connections_per_ip", 1, 10'000'000)) {
      config.limits.max_connections_per_ip = static_cast<std::size_t>(*v);
    }
    // Unless given, twice max_connections_per_ip: a fallback session uses two connections (its
    // stream or poll, and a POST), and a raised session limit (users behind one corporate
    // proxy) should not be undone by this one.
    if (auto v = limits->integer("max_http_connections_per_ip", 1, 20'000'000)) {
      config.limits.max_http_connections_per_ip = static_cast<std::size_t>(*v);
    } else {
      config.limits.max_http_connections_per_ip = 2 * config.limits.max_connections_per_ip;
    }
    if (auto v = limits->integer("ipv6_prefix_length", 16, 128)) {
      config.limits.ipv6_prefix_length = static_cast<unsigned>(*v);
    }
    if (auto v = limits->duration("handshake_timeout", 1s, 10min)) {
      config.limits.handshake_timeout = std::chrono::duration_cast<std::chrono::seconds>(*v);
    }
    if (auto v = limits->byte_size("inbound_bytes_in_flight", 64 * 1024, 1ull << 40)) {
      config.limits.inbound_bytes_in_flight = static_cast<std::size_t>(*v);
    }
    if (auto v = limits->byte_size("unread_output_bytes", 64 * 1024, 1ull << 40)) {
      config.limits.unread_output_bytes = static_cast<std::size_t>(*v);
    }
    limits->reject_unknown_keys();
  }
  if (config.instance_id.empty()) config.instance_id = default_instance_id();
  if (auto table = top.table("fallback")) config.fallback = read_fallback_keys(*table);
  if (auto table = top.table("cluster")) config.cluster = read_cluster_keys(*table);
  config.auth = auth::parse_auth_settings(top, config_dir);
  std::optional<Endpoint> admin_endpoint;
  if (auto admin = top.table("admin")) {
    AdminConfig a;
    a.address = admin->string("address").value_or("127.0.0.1");
    if (!is_ip_literal(a.address)) {
      admin->fail_at("address", "'address' in [admin] must be an IPv4 or IPv6 address");
    }
    if (!admin->contains("port")) admin->fail("missing required key 'port' in [admin]");
    a.port = static_cast<std::uint16_t>(*admin->integer("port", 1, 65535));
    a.token = admin->secret("token");
    if (a.token && a.token->find_first_not_of(" \t") == std::string::npos) {
      // (An empty token would let "Authorization: Bearer " in: the API open to anyone.)
      admin->fail_at(admin->contains("token") ? "token" : "token_env",
                     "the admin token is empty: give one, or leave out 'token' and 'token_env' "
                     "to keep the REST API off");
    }
    a.hosts = admin->string_array("hosts").value_or(std::vector<std::string>{});
    a.allow_api_without_token = admin->boolean("allow_api_without_token").value_or(false);
    admin->reject_unknown_keys();
    admin_endpoint = endpoint(a.address, a.port, admin->position_of("port"));
    config.admin = a;
  }

  auto listeners = top.array_of_tables("listeners");
  if (listeners.empty()) {
    // "[[listener]]" is the likely cause: say so at its position rather than "no listeners".
    for (const auto& [key, value] : root) {
      if (nearest_key(key.str(), {"listeners"})) {
        throw ConfigError(SourcePosition{file, key.source().begin.line, key.source().begin.column},
                          "unknown key '" + std::string(key.str()) +
                              "' in the top level; did you mean [[listeners]]?");
      }
    }
    top.fail("no listeners: add at least one [[listeners]] table with a 'port'");
  }
  std::vector<Endpoint> listener_endpoints;
  for (auto& t : listeners) {
    ListenerConfig l = read_listener(t, config.auth, config_dir);
    t.reject_unknown_keys();
    listener_endpoints.push_back(endpoint(l.address, l.port, t.position_of("port")));
    config.listeners.push_back(std::move(l));
  }
  check_endpoints(listener_endpoints, admin_endpoint);

  std::map<std::string, AdapterKind*, std::less<>> kinds_by_name;
  auto kind_named = [&](const std::string& name) -> AdapterKind* {
    AdapterKind*& kind = kinds_by_name[name];
    if (kind == nullptr) {
      config.kinds.push_back((*registry.find(name))());
      kind = config.kinds.back().get();
    }
    return kind;
  };

  // Sections claimed by adapters (e.g. [upstreams.*] for mqtt) come before the routes that use
  // them, in file order.
  std::vector<std::pair<std::string, std::string>> sections;  // section, owner
  for (const auto& [key, value] : root) {
    std::string owner = registry.section_owner(key.str());
    if (!owner.empty()) sections.emplace_back(std::string(key.str()), std::move(owner));
  }
  for (const auto& [section, owner] : sections) {
    top.consume(section);
    kind_named(owner)->configure_section(top, section);
  }

  for (auto& t : top.array_of_tables("routes")) {
    RouteConfig route = read_route_keys(t, config);

    const AdapterRegistry::KindFactory* factory = registry.find(route.adapter_name);
    if (factory == nullptr) {
      std::string known;
      for (const auto& name : registry.names()) known += (known.empty() ? "" : ", ") + name;
      t.fail_at("adapter", "unknown adapter \"" + route.adapter_name + "\" (known: " + known + ")");
    }
    AdapterKind* kind = kind_named(route.adapter_name);
    ConfigTable options(t.raw(), file, "route \"" + route.path + "\"");
    consume_route_core_keys(options);
    route.adapter = kind->create_route(
        options,
        RouteContext{route.path, config_dir, config.http_client.get(), config.effective_threads(),
                     &LwsStreamClient::instance(), config.cluster.control_prefix});
    options.reject_unknown_keys();
    take_adapter_subprotocols(t, route);
    config.routes.push_back(std::move(route));
  }
  read_proxy_tables(top, config);
  top.reject_unknown_keys();
  return config;
}

ServerConfig load_config_file(const std::string& file, const AdapterRegistry& registry) {
  auto fail = [&file](const std::string& what, const std::string& why) {
    return ConfigError(SourcePosition{file, 0, 0}, "cannot " + what + " the config file: " + why);
  };
  // Non-blocking: a FIFO nobody writes (or a hung device) must not hold a reload, and with it
  // a SIGTERM, for ever. A pipe gets a few seconds to deliver; a regular file reads as usual.
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw fail("open", text::errno_text(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) throw fail("read", text::errno_text(EISDIR));
  // Bounded, so --config /dev/zero is an error rather than a process that eats all memory.
  constexpr std::size_t kMaxConfigBytes = 16 * 1024 * 1024;
  constexpr auto kReadTimeout = std::chrono::seconds(5);
  const auto deadline = std::chrono::steady_clock::now() + kReadTimeout;
  std::string text;
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0) {
        throw fail("read", "nothing more came within 5 s");
      }
      continue;
    }
    if (n < 0) throw fail("read", text::errno_text(errno));
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxConfigBytes) throw fail("read", "larger than 16 MiB");
  }
  return parse_config(text, file, registry);
}

}  // namespace wsbridge
