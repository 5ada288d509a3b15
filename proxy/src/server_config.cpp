#include "server_config.hpp"

#include <fstream>
#include <map>
#include <sstream>

#include "ip_address.hpp"

namespace wsbridge {

namespace {

using namespace std::chrono_literals;

// A route path: absolute, no query or fragment, printable ASCII without spaces, no dot segments.
std::optional<std::string> route_path_problem(const std::string& path) {
  if (path.empty() || path.front() != '/') return "must start with '/'";
  if (path.size() > 255) return "must be at most 255 characters";
  for (const char c : path) {
    if (c <= 0x20 || c >= 0x7f) return "must be printable ASCII without spaces";
    if (c == '?' || c == '#') return "must not contain '?' or '#'";
  }
  if (path.find("/../") != std::string::npos || path.find("/./") != std::string::npos ||
      path.ends_with("/..") || path.ends_with("/.")) {
    return "must not contain '.' or '..' segments";
  }
  if (path.find("//") != std::string::npos) return "must not contain '//'";
  return std::nullopt;
}

ListenerConfig read_listener(ConfigTable& t, const auth::AuthSettings& auth_settings) {
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
  l.permessage_deflate = t.boolean("permessage_deflate").value_or(false);
  l.origins = auth::parse_origin_policy(t);
  if (auto a = t.table("auth")) l.auth = auth::parse_route_auth(*a, auth_settings);
  return l;
}

}  // namespace

const RouteConfig* ServerConfig::find_route(std::string_view path) const {
  for (const auto& route : routes) {
    if (route.path == path) return &route;
  }
  return nullptr;
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
    if (auto level = server->string("log_level")) {
      auto parsed = parse_log_level(*level);
      if (!parsed) {
        server->fail_at("log_level",
                        "'log_level' in [server] must be one of \"error\", \"warn\", "
                        "\"info\", \"debug\", not \"" +
                            *level + "\"");
      }
      config.log_level = *parsed;
    }
    if (auto format = server->string("log_format")) {
      if (*format == "text") {
        config.log_format = LogFormat::kText;
      } else if (*format == "json") {
        config.log_format = LogFormat::kJson;
      } else {
        server->fail_at("log_format", "'log_format' in [server] must be \"text\" or \"json\"");
      }
    }
    if (auto dir = server->string("static_dir")) {
      std::filesystem::path p(*dir);
      if (p.is_relative()) p = config_dir / p;
      std::error_code ec;
      if (!std::filesystem::is_directory(p, ec)) {
        server->fail_at("static_dir",
                        "'static_dir' in [server]: " + p.string() + " is not a readable directory");
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
    server->reject_unknown_keys();
  }

  if (auto limits = top.table("limits")) {
    if (auto v = limits->integer("max_connections", 1, 10'000'000)) {
      config.limits.max_connections = static_cast<std::size_t>(*v);
    }
    if (auto v = limits->integer("max_connections_per_ip", 1, 10'000'000)) {
      config.limits.max_connections_per_ip = static_cast<std::size_t>(*v);
    }
    if (auto v = limits->duration("handshake_timeout", 1s, 10min)) {
      config.limits.handshake_timeout = std::chrono::duration_cast<std::chrono::seconds>(*v);
    }
    limits->reject_unknown_keys();
  }
  config.auth = auth::parse_auth_settings(top, config_dir);
  if (auto admin = top.table("admin")) {
    AdminConfig a;
    a.address = admin->string("address").value_or("127.0.0.1");
    if (!is_ip_literal(a.address)) {
      admin->fail_at("address", "'address' in [admin] must be an IPv4 or IPv6 address");
    }
    if (!admin->contains("port")) admin->fail("missing required key 'port' in [admin]");
    a.port = static_cast<std::uint16_t>(*admin->integer("port", 1, 65535));
    a.token = admin->secret("token");
    a.hosts = admin->string_array("hosts").value_or(std::vector<std::string>{});
    a.allow_api_without_token = admin->boolean("allow_api_without_token").value_or(false);
    admin->reject_unknown_keys();
    config.admin = a;
  }

  auto listeners = top.array_of_tables("listeners");
  if (listeners.empty()) {
    top.fail("no listeners: add at least one [[listeners]] table with a 'port'");
  }
  std::map<std::pair<std::string, std::uint16_t>, bool> seen_listeners;
  for (auto& t : listeners) {
    ListenerConfig l = read_listener(t, config.auth);
    if (!seen_listeners.emplace(std::make_pair(l.address, l.port), true).second) {
      t.fail_at("port", "listener " + l.address + " port " + std::to_string(l.port) +
                            " is configured twice");
    }
    t.reject_unknown_keys();
    config.listeners.push_back(std::move(l));
  }

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
    RouteConfig route;
    route.path = t.required_string("path");
    if (auto problem = route_path_problem(route.path)) {
      t.fail_at("path", "route path \"" + route.path + "\" " + *problem);
    }
    if (route.path == kHealthPath) {
      t.fail_at("path", "route path \"" + route.path + "\" is reserved for the health endpoint");
    }
    if (config.find_route(route.path) != nullptr) {
      t.fail_at("path", "duplicate route path \"" + route.path + "\"");
    }
    route.adapter_name = t.required_string("adapter");
    if (auto v = t.byte_size("max_message_bytes", 1, 1ull << 30)) route.max_message_bytes = *v;
    if (auto v = t.byte_size("max_queued_bytes", 1024, 1ull << 34)) route.max_queued_bytes = *v;
    if (auto v = t.integer("max_queued_messages", 1, 100'000'000)) {
      route.max_queued_messages = static_cast<std::size_t>(*v);
    }
    if (auto policy = t.string("slow_consumer")) {
      if (*policy == "disconnect") {
        route.slow_consumer = RouteConfig::SlowConsumer::kDisconnect;
      } else if (*policy == "drop_oldest") {
        route.slow_consumer = RouteConfig::SlowConsumer::kDropOldest;
      } else {
        t.fail_at("slow_consumer", "'slow_consumer' must be \"disconnect\" or \"drop_oldest\"");
      }
    }
    if (auto v = t.duration("ping_interval", 100ms, 24h)) route.ping_interval = *v;
    if (auto v = t.duration("idle_timeout", 100ms, 24h)) route.idle_timeout = *v;
    if (auto protocols = t.string_array("subprotocols")) {
      for (const auto& p : *protocols) {
        if (p.empty() || p.starts_with("bearer.") ||
            p.find_first_of(" ,;\"()<>@:/[]?={}\t") != std::string::npos) {
          t.fail_at("subprotocols", "subprotocol \"" + p +
                                        "\" is not a valid token (and "
                                        "bearer.* is reserved for credentials)");
        }
      }
      route.subprotocols = *protocols;
    }
    if (auto rate = t.integer("rate", 0, 1'000'000)) route.rate = static_cast<double>(*rate);
    if (auto burst = t.integer("burst", 1, 10'000'000)) {
      if (route.rate == 0) t.fail_at("burst", "'burst' needs a 'rate'");
      route.burst = static_cast<double>(*burst);
    }
    if (route.rate > 0 && route.burst == 0) route.burst = std::max(route.rate, 1.0);
    if (auto auth_table = t.table("auth")) {
      route.auth = auth::parse_route_auth(*auth_table, config.auth);
      route.has_own_auth = true;
    }
    if (route.idle_timeout <= route.ping_interval) {
      t.fail_at(t.contains("idle_timeout") ? "idle_timeout" : "ping_interval",
                "'idle_timeout' must be longer than 'ping_interval' in route \"" + route.path +
                    "\", so a live peer has time to answer a ping");
    }

    const AdapterRegistry::KindFactory* factory = registry.find(route.adapter_name);
    if (factory == nullptr) {
      std::string known;
      for (const auto& name : registry.names()) known += (known.empty() ? "" : ", ") + name;
      t.fail_at("adapter", "unknown adapter \"" + route.adapter_name + "\" (known: " + known + ")");
    }
    AdapterKind* kind = kind_named(route.adapter_name);
    ConfigTable options(t.raw(), file, "route \"" + route.path + "\"");
    for (const char* core_key : {"path", "adapter", "max_message_bytes", "max_queued_bytes",
                                 "ping_interval", "idle_timeout", "subprotocols", "rate", "burst",
                                 "auth", "max_queued_messages", "slow_consumer"}) {
      options.consume(core_key);
    }
    route.adapter =
        kind->create_route(options, RouteContext{route.path, config_dir, config.http_client.get()});
    options.reject_unknown_keys();
    config.routes.push_back(std::move(route));
  }
  top.reject_unknown_keys();
  return config;
}

ServerConfig load_config_file(const std::string& file, const AdapterRegistry& registry) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(SourcePosition{file, 0, 0}, "cannot open the config file");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), file, registry);
}

}  // namespace wsbridge
