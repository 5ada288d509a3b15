#include "http_config.hpp"

#include <algorithm>
#include <filesystem>

namespace wsbridge::http {

namespace {

bool valid_url(const std::string& url) {
  return (url.starts_with("http://") && url.size() > 7) ||
         (url.starts_with("https://") && url.size() > 8);
}

}  // namespace

HttpRouteConfig HttpRouteConfig::from_route(ConfigTable& options, const std::string& path,
                                            const std::string& config_dir) {
  using std::chrono::milliseconds;
  HttpRouteConfig c;
  c.path = path;
  if (auto mode = options.string("mode")) {
    if (*mode == "message") {
      c.mode = Mode::kMessage;
    } else if (*mode == "rpc") {
      c.mode = Mode::kRpc;
    } else {
      options.fail_at("mode", "'mode' must be \"message\" or \"rpc\"");
    }
  }
  c.backend.url = options.required_string("backend");
  if (!valid_url(c.backend.url)) {
    options.fail_at("backend", "'backend' must be an http:// or https:// URL");
  }
  if (auto t = options.duration("timeout", milliseconds(1), std::chrono::hours(1))) {
    c.backend.timeout = *t;
  }
  if (auto n = options.byte_size("max_response_size", 1, 1ull << 30)) {
    c.backend.max_response_bytes = static_cast<std::size_t>(*n);
  }
  if (auto n = options.integer("pool_size", 1, 10000)) {
    c.backend.max_connections = static_cast<std::size_t>(*n);
  }
  if (auto t = options.duration("keepalive_timeout", milliseconds(1), std::chrono::hours(1))) {
    c.backend.idle_timeout = *t;
  }
  if (auto ca = options.string("ca_file")) {
    std::filesystem::path p(*ca);
    if (p.is_relative()) p = std::filesystem::path(config_dir) / p;
    if (!std::filesystem::is_regular_file(p)) {
      options.fail_at("ca_file", "CA file " + p.string() + " does not exist");
    }
    c.backend.ca_file = p.string();
  }
  if (auto n = options.integer("max_concurrent", 1, 1000000)) {
    c.max_concurrent = static_cast<std::size_t>(*n);
  }
  if (auto n = options.integer("max_in_flight", 1, 10000)) {
    if (c.mode == Mode::kMessage && *n != 1) {
      options.fail_at("max_in_flight",
                      "'max_in_flight' is for rpc routes (message mode sends one at a time, "
                      "to keep the order)");
    }
    c.max_in_flight = static_cast<std::size_t>(*n);
  }
  if (c.mode == Mode::kMessage) c.max_in_flight = 1;
  if (auto n = options.integer("max_queued", 1, 1000000))
    c.max_queued = static_cast<std::size_t>(*n);

  if (auto methods = options.string_array("methods")) {
    if (c.mode != Mode::kRpc) options.fail_at("methods", "'methods' is for rpc routes");
    for (auto m : *methods) {
      std::transform(m.begin(), m.end(), m.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
      if (!is_http_token(m) || m == "CONNECT" || m == "TRACE") {
        options.fail_at("methods", "'methods' has an invalid or unsupported method \"" + m + "\"");
      }
      c.methods.push_back(m);
    }
  } else {
    c.methods = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
  }
  if (auto paths = options.string_array("paths")) {
    if (c.mode != Mode::kRpc) options.fail_at("paths", "'paths' is for rpc routes");
    for (const auto& p : *paths) {
      if (!p.starts_with("/") || p.find("..") != std::string::npos ||
          p.find_first_of("?#\r\n ") != std::string::npos) {
        options.fail_at("paths",
                        "each of 'paths' must be a path prefix starting with '/', "
                        "without '..', '?', '#' or spaces");
      }
      c.paths.push_back(p);
    }
    if (c.paths.empty()) options.fail_at("paths", "'paths' must not be empty");
  } else {
    c.paths = {"/"};
  }
  if (auto headers = options.table("headers")) {
    // NAME = "value", or NAME_env = "VARIABLE" to read the value from the environment.
    std::vector<std::string> names;
    for (const auto& [key, node] : headers->raw()) {
      std::string name(key.str());
      if (name.ends_with("_env")) name.resize(name.size() - 4);
      if (!is_http_token(name))
        headers->fail_at(key.str(), "header name \"" + name + "\" is invalid");
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
    for (const auto& name : names) {
      auto value = headers->secret(name);
      if (!value) continue;
      if (!safe_header_value(*value)) {
        headers->fail_at(headers->contains(name) ? name : name + "_env",
                         "a header value must not contain CR, LF or NUL");
      }
      c.static_headers.push_back({name, *value});
    }
    headers->reject_unknown_keys();
  }
  auto hook = [&](std::string_view key) -> std::optional<HttpBackendOptions> {
    auto url = options.string(key);
    if (!url) return std::nullopt;
    if (!valid_url(*url)) options.fail_at(key, "'" + std::string(key) + "' must be an http(s) URL");
    HttpBackendOptions o = c.backend;
    o.url = *url;
    return o;
  };
  c.on_connect = hook("on_connect");
  c.on_disconnect = hook("on_disconnect");
  return c;
}

}  // namespace wsbridge::http
