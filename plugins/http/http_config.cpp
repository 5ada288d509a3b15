#include "http_config.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "path_rules.hpp"
#include "wsbridge/header_rules.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge::http {

namespace {

// Why `file` cannot serve as a CA bundle (unreadable, or no PEM certificate in it), or nullopt.
// Checked here for every backend, not only when an https connection first needs it, so that
// --check-config names the file and its line.
std::optional<std::string> pem_certificates_problem(const std::string& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) return "CA file " + file + " does not exist";
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(file.c_str(), "r"), &BIO_free);
  if (!bio) return "CA file " + file + " cannot be read: " + text::errno_text(errno);
  int certificates = 0;
  ERR_clear_error();
  // _AUX: also "TRUSTED CERTIFICATE" blocks, which OpenSSL's CA loading accepts too.
  while (X509* cert = PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr, nullptr)) {
    X509_free(cert);
    ++certificates;
  }
  // The loop ends at the end of the file (PEM_R_NO_START_LINE) or at a broken certificate.
  const unsigned long error = ERR_peek_last_error();
  ERR_clear_error();
  if (ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_NO_START_LINE) {
    if (certificates > 0) return std::nullopt;
    return "CA file " + file + " holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")";
  }
  return "CA file " + file + " has a certificate OpenSSL cannot read (not PEM, or damaged)";
}

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
  if (auto mode =
          options.one_of<Mode>("mode", {{"message", Mode::kMessage}, {"rpc", Mode::kRpc}})) {
    c.mode = *mode;
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
    if (auto why = pem_certificates_problem(p.string())) options.fail_at("ca_file", *why);
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
    for (const auto& name : *methods) {
      const std::string m = text::upper(name);
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
      // A prefix must itself be a path the check accepts, or it could never match safely.
      std::string why = p.find_first_of("?#") != std::string::npos
                            ? "it must not contain '?' or '#'"
                            : check_rpc_path(p, {"/"}).why;
      if (!why.empty()) {
        options.fail_at("paths", "each of 'paths' must be a path prefix: \"" + p + "\": " + why);
      }
      c.paths.push_back(p);
    }
    if (c.paths.empty()) options.fail_at("paths", "'paths' must not be empty");
  } else {
    c.paths = {"/"};
  }
  if (auto allowed = options.string_array("allow_client_headers")) {
    if (c.mode != Mode::kRpc) {
      options.fail_at("allow_client_headers", "'allow_client_headers' is for rpc routes");
    }
    for (const auto& name : *allowed) {
      if (classify_header(name) != HeaderClass::kTrusted) {
        options.fail_at("allow_client_headers",
                        "'allow_client_headers' lists \"" + name + "\", which is " +
                            (classify_header(name) == HeaderClass::kReserved
                                 ? "reserved: no client may set it"
                                 : "not refused by default: nothing to allow"));
      }
      c.client_headers.push_back(canonical_header_name(name));
    }
  }
  if (auto headers = options.table("headers")) {
    // NAME = "value", or NAME_env = "VARIABLE" to read the value from the environment.
    std::vector<std::string> names;
    // Their canonical names: X-Key and X_Key are one header to many backends.
    std::vector<std::string> canonical;
    for (const auto& [key, node] : headers->raw()) {
      std::string name(key.str());
      if (name.ends_with("_env")) name.resize(name.size() - 4);
      if (!is_http_token(name))
        headers->fail_at(key.str(), "header name \"" + name + "\" is invalid");
      if (reserved_header(name)) {
        headers->fail_at(key.str(), "header " + describe_header(name) +
                                        " is set by wsbridge or by the HTTP connection");
      }
      if (std::find(names.begin(), names.end(), name) != names.end()) continue;
      if (std::find(canonical.begin(), canonical.end(), canonical_header_name(name)) !=
          canonical.end()) {
        headers->fail_at(key.str(), "header " + describe_header(name) + " is given twice");
      }
      names.push_back(name);
      canonical.push_back(canonical_header_name(name));
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
