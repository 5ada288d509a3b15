#include "mqtt_config.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include "acl.hpp"
#include "topic.hpp"
#include "topic_levels.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge::mqtt {

namespace {
using namespace std::chrono_literals;

// The whole file, or a config error at `key` saying why it cannot be read.
std::string read_file(ConfigTable& t, const std::string& key, const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  std::string why;
  if (ec) {
    why = ec.message();
  } else if (!std::filesystem::is_regular_file(status)) {
    why = "not a regular file";
  }
  std::string text;
  if (why.empty()) {
    errno = 0;
    std::ifstream in(path, std::ios::binary);
    if (in) text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!in.is_open() || in.bad()) why = errno != 0 ? text::errno_text(errno) : "cannot be read";
  }
  if (!why.empty()) {
    t.fail_at(key, "'" + key + "' in " + t.name() + ": cannot read " + path + " (" + why + ")");
  }
  return text;
}

// What Paho would only find out at connect time, over and over with backoff: the files must be
// PEM, the CA file must hold a certificate, the key must open without a passphrase (there is no
// setting for one) and belong to the certificate.
void check_pem_files(ConfigTable& t, const std::string& ca, const std::string& cert,
                     const std::string& key, const UpstreamConfig& u) {
  using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;
  auto bio = [](const std::string& text) {
    return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), &BIO_free);
  };
  auto no_passphrase = [](char*, int, int, void*) { return 0; };
  std::unique_ptr<X509, decltype(&X509_free)> certificate(nullptr, &X509_free);
  if (u.ca_file) {
    Bio b = bio(ca);
    std::unique_ptr<X509, decltype(&X509_free)> first(
        PEM_read_bio_X509(b.get(), nullptr, no_passphrase, nullptr), &X509_free);
    if (!first) {
      t.fail_at("ca_file", "'ca_file' in " + t.name() + ": " + *u.ca_file +
                               " holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
    }
  }
  if (u.cert_file) {
    Bio b = bio(cert);
    certificate.reset(PEM_read_bio_X509(b.get(), nullptr, no_passphrase, nullptr));
    if (!certificate) {
      t.fail_at("cert_file", "'cert_file' in " + t.name() + ": " + *u.cert_file +
                                 " holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
    }
  }
  if (u.key_file) {
    Bio b = bio(key);
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(
        PEM_read_bio_PrivateKey(b.get(), nullptr, no_passphrase, nullptr), &EVP_PKEY_free);
    if (!pkey) {
      t.fail_at("key_file", "'key_file' in " + t.name() + ": " + *u.key_file +
                                " holds no PEM private key, or an encrypted one (wsbridge has "
                                "no passphrase setting)");
    }
    if (certificate && X509_check_private_key(certificate.get(), pkey.get()) != 1) {
      t.fail_at("key_file", "'key_file' in " + t.name() + ": " + *u.key_file +
                                " is not the private key of 'cert_file' " + *u.cert_file);
    }
  }
  ERR_clear_error();  // what the failed reads queued would surface in unrelated TLS errors
}

}  // namespace

const UpstreamConfig& read_upstream(ConfigTable& t,
                                    const std::map<std::string, UpstreamConfig>& upstreams,
                                    std::string& name) {
  name = t.required_string("upstream");
  const auto found = upstreams.find(name);
  if (found == upstreams.end()) {
    std::string known;
    for (const auto& [defined, u] : upstreams) known += (known.empty() ? "" : ", ") + defined;
    t.fail_at("upstream",
              "unknown upstream \"" + name + "\" (defined: " +
                  (known.empty() ? "none; add an [upstreams." + name + "] table" : known) + ")");
  }
  return found->second;
}

std::vector<std::string> read_acl_patterns(ConfigTable& t, const std::string& key) {
  auto patterns = t.string_array(key).value_or(std::vector<std::string>{});
  for (const auto& p : patterns) {
    if (auto problem = acl_pattern_problem(p)) {
      t.fail_at(key, "ACL pattern \"" + p + "\" in '" + key + "' of " + t.name() + ": " + *problem);
    }
  }
  return patterns;
}

std::string reserved_prefix_of_route(ConfigTable& t, const std::string& topic_prefix,
                                     const std::vector<std::string>& allow_subscribe,
                                     const std::vector<std::string>& allow_publish,
                                     const std::string& reserved) {
  if (reserved.empty()) return {};
  const std::string why = " reaches \"" + reserved +
                          "\", the topics wsbridge instances keep for their control messages "
                          "([cluster] control_prefix): no client may use them";
  if (!topic_prefix.empty()) {
    if (reaches_prefix(topic_prefix + "#", reserved)) {
      t.fail_at("topic_prefix", "'topic_prefix' \"" + topic_prefix + "\"" + why);
    }
    return {};  // every topic of the route is under its prefix, away from the reserved ones
  }
  for (const auto& [key, patterns] : {std::pair{"allow_subscribe", &allow_subscribe},
                                      std::pair{"allow_publish", &allow_publish}}) {
    for (const auto& p : *patterns) {
      if (reaches_prefix(p, reserved)) t.fail_at(key, "ACL pattern \"" + p + "\"" + why);
    }
  }
  return reserved;
}

UpstreamConfig UpstreamConfig::from_table(const std::string& name, ConfigTable& t) {
  UpstreamConfig u;
  u.name = name;
  u.uri = t.required_string("uri");
  const bool tls = u.uri.starts_with("ssl://") || u.uri.starts_with("mqtts://");
  if (!u.uri.starts_with("tcp://") && !u.uri.starts_with("mqtt://") && !tls) {
    t.fail_at("uri", "'uri' in " + t.name() +
                         " must start with tcp:// or mqtt:// (plain), ssl:// or mqtts:// (TLS), "
                         "e.g. \"tcp://127.0.0.1:1883\"; not \"" +
                         u.uri + "\"");
  }
  // host:port, as Paho reads it ("[::1]:1883" for IPv6): a port out of range or an empty host
  // only fails at the first connect, and then at every retry.
  const std::string_view authority = std::string_view(u.uri).substr(u.uri.find("://") + 3);
  const auto colon = authority.rfind(':');
  unsigned port = 0;
  if (colon != std::string_view::npos) {
    const std::string_view digits = authority.substr(colon + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) port = 0;
  }
  if (port == 0 || port > 65535) {
    t.fail_at("uri", "'uri' in " + t.name() +
                         " needs a port from 1 to 65535, e.g. \"tcp://127.0.0.1:1883\"");
  }
  if (const std::string_view host = authority.substr(0, colon); host.empty() || host == "[]") {
    t.fail_at("uri", "'uri' in " + t.name() + " needs a host, e.g. \"tcp://127.0.0.1:1883\"");
  }
  if (auto prefix = t.string("client_id_prefix")) {
    if (prefix->empty() || prefix->size() > 32) {
      t.fail_at("client_id_prefix", "'client_id_prefix' must be 1 to 32 characters");
    }
    u.client_id_prefix = *prefix;
  }
  u.username = t.string("username");
  u.password = t.secret("password");
  if (u.password && !u.username) {
    t.fail_at(t.contains("password") ? "password" : "password_env",
              "a password needs a 'username' in " + t.name());
  }
  if (auto keepalive = t.duration("keepalive", 1s, 65535s)) {
    u.keepalive = std::chrono::duration_cast<std::chrono::seconds>(*keepalive);
  }
  if (auto version = t.one_of<int>("mqtt_version", {{"3.1.1", 4}, {"5", 5}})) {
    u.mqtt_version = *version;
  }
  std::string contents[3];
  int i = 0;
  for (const char* key : {"ca_file", "cert_file", "key_file"}) {
    if (auto path = t.string(key)) {
      if (!tls) t.fail_at(key, "'" + std::string(key) + "' needs an ssl:// or mqtts:// uri");
      contents[i] = read_file(t, key, *path);
      (key == std::string("ca_file")     ? u.ca_file
       : key == std::string("cert_file") ? u.cert_file
                                         : u.key_file) = *path;
    }
    ++i;
  }
  if (u.cert_file.has_value() != u.key_file.has_value()) {
    t.fail("'cert_file' and 'key_file' go together in " + t.name());
  }
  check_pem_files(t, contents[0], contents[1], contents[2], u);
  u.tls_files = contents[0] + '\0' + contents[1] + '\0' + contents[2];
  u.verify_server = t.boolean("verify_server").value_or(true);
  if (auto v = t.duration("reconnect_min", 50ms, 10min)) u.reconnect_min = *v;
  if (auto v = t.duration("reconnect_max", 50ms, 1h)) u.reconnect_max = *v;
  if (u.reconnect_max < u.reconnect_min) {
    t.fail_at("reconnect_max", "'reconnect_max' must not be shorter than 'reconnect_min'");
  }
  if (auto v = t.duration("connect_timeout", 100ms, 5min)) u.connect_timeout = *v;
  if (auto v = t.byte_size("max_packet_bytes", 64, 256ull * 1024 * 1024)) {
    u.max_packet_bytes = static_cast<std::size_t>(*v);
  }
  if (auto v = t.integer("max_topic_levels", 1, 32'768)) {
    u.max_topic_levels = static_cast<std::size_t>(*v);
  }
  if (auto v = t.integer("max_buffered_publishes", 0, 1'000'000)) {
    u.max_buffered_publishes = static_cast<std::size_t>(*v);
  }
  if (auto v = t.integer("max_retained_cache", 0, 10'000'000)) {
    u.max_retained_cache = static_cast<std::size_t>(*v);
  }
  if (auto v = t.integer("session_window", 2, 1'000'000)) {
    u.session_window = static_cast<std::size_t>(*v);
  }
  if (auto v = t.integer("publish_window", 1, static_cast<std::int64_t>(u.kMaxPublishWindow))) {
    u.publish_window = static_cast<std::size_t>(*v);
  }
  t.reject_unknown_keys();
  return u;
}

namespace {

// The route's own topics are bound by its upstream's max_topic_levels as its clients' are: the
// broker connection is shared, and a topic the broker refuses may make it drop that connection
// for every route on it. Found here rather than when the first connection subscribes.
void check_topic_levels(ConfigTable& t, const MqttRouteConfig& r, std::size_t max_levels) {
  // (The prefix's last level and a topic's first join into one: "t/" + "a/b" is "t/a/b".)
  const std::size_t prefix_levels =
      r.topic_prefix.empty() ? 0 : topic_level_count(r.topic_prefix) - 1;
  const std::string over_max =
      " levels with this route's 'topic_prefix', more than its "
      "upstream's max_topic_levels (" +
      std::to_string(max_levels) + ")";
  if (prefix_levels + 1 > max_levels) {
    t.fail_at("topic_prefix", "'topic_prefix' leaves no level for a topic: it has " +
                                  std::to_string(prefix_levels) + " levels and its upstream's " +
                                  "max_topic_levels is " + std::to_string(max_levels));
    return;
  }
  for (const auto& filter : r.subscribe) {
    if (const std::size_t n = prefix_levels + topic_level_count(filter); n > max_levels) {
      t.fail_at("subscribe",
                "filter \"" + filter + "\" in 'subscribe' has " + std::to_string(n) + over_max);
    }
  }
  if (r.publish_topic) {
    if (const std::size_t n = prefix_levels + topic_level_count(*r.publish_topic); n > max_levels) {
      t.fail_at("publish_topic", "'publish_topic' has " + std::to_string(n) + over_max);
    }
  }
}

}  // namespace

SubscriptionBounds read_subscription_bounds(ConfigTable& t) {
  SubscriptionBounds b;
  if (auto v = t.integer("max_subscriptions", 1, 100000)) {
    b.max_filters = static_cast<std::size_t>(*v);
  }
  b.max_bytes = 160 * b.max_filters;
  b.max_levels = 10 * b.max_filters;
  if (auto v = t.byte_size("max_subscription_bytes", 64, 1ull << 30)) {
    b.max_bytes = static_cast<std::size_t>(*v);
  }
  if (auto v = t.integer("max_subscription_levels", 1, 100'000'000)) {
    b.max_levels = static_cast<std::size_t>(*v);
  }
  return b;
}

MqttRouteConfig MqttRouteConfig::from_route(
    ConfigTable& t, const std::string& path,
    const std::map<std::string, UpstreamConfig>& upstreams) {
  MqttRouteConfig r;
  r.path = path;
  const UpstreamConfig& upstream = read_upstream(t, upstreams, r.upstream);
  if (auto mode = t.one_of<RouteMode>("mode", {{"json", RouteMode::kJson},
                                               {"raw", RouteMode::kRaw},
                                               {"passthrough", RouteMode::kPassthrough}})) {
    r.mode = *mode;
  }
  if (auto prefix = t.string("topic_prefix")) {
    if (!prefix->empty()) {
      if (auto problem = topic_name_problem(*prefix)) {
        t.fail_at("topic_prefix", "'topic_prefix' " + *problem);
      }
      if (prefix->back() != '/') {
        t.fail_at("topic_prefix",
                  "'topic_prefix' must end with '/' (e.g. \"tenant1/\"), so a "
                  "prefix never joins a browser's first topic level");
      }
    }
    r.topic_prefix = *prefix;
  }
  r.allow_subscribe = read_acl_patterns(t, "allow_subscribe");
  for (const auto& p : r.allow_subscribe) {
    if (is_shared_subscription(r.topic_prefix, p)) {
      t.fail_at("allow_subscribe", "ACL pattern \"" + p + "\" in 'allow_subscribe' of " + t.name() +
                                       ": " + std::string(kNoSharedSubscriptions));
    }
  }
  r.allow_publish = read_acl_patterns(t, "allow_publish");
  r.subscriptions = read_subscription_bounds(t);
  if (auto v = t.integer("max_qos", 0, 2)) r.max_qos = static_cast<int>(*v);
  const bool raw = r.mode == RouteMode::kRaw;
  for (const char* key : {"subscribe", "publish_topic", "qos", "retain"}) {
    if (!raw && t.contains(key)) {
      t.fail_at(key, "'" + std::string(key) + "' is for mode = \"raw\" routes");
    }
  }
  if (raw) {
    for (const char* key : {"allow_subscribe", "allow_publish", "max_subscriptions",
                            "max_subscription_bytes", "max_subscription_levels", "max_qos"}) {
      if (t.contains(key)) {
        t.fail_at(key, "'" + std::string(key) +
                           "' is for mode = \"json\" routes; a raw route "
                           "uses its fixed 'subscribe' and 'publish_topic'");
      }
    }
    r.subscribe = t.string_array("subscribe").value_or(std::vector<std::string>{});
    for (const auto& filter : r.subscribe) {
      if (auto problem = topic_filter_problem(filter)) {
        t.fail_at("subscribe", "filter \"" + filter + "\" in 'subscribe' " + *problem);
      }
      if (is_shared_subscription(r.topic_prefix, filter)) {
        t.fail_at("subscribe", "filter \"" + filter +
                                   "\" in 'subscribe': " + std::string(kNoSharedSubscriptions));
      }
    }
    r.publish_topic = t.string("publish_topic");
    if (r.publish_topic) {
      if (auto problem = topic_name_problem(*r.publish_topic)) {
        t.fail_at("publish_topic", "'publish_topic' " + *problem);
      }
    }
    if (r.subscribe.empty() && !r.publish_topic) {
      t.fail("a raw route needs 'subscribe' filters, a 'publish_topic', or both");
    }
    if (auto v = t.integer("qos", 0, 2)) r.qos = static_cast<int>(*v);
    r.retain = t.boolean("retain").value_or(false);
  }
  check_topic_levels(t, r, upstream.max_topic_levels);
  return r;
}

}  // namespace wsbridge::mqtt
