#include "passthrough/passthrough_config.hpp"

#include <algorithm>
#include <string_view>

#include "topic.hpp"

namespace wsbridge::mqtt {

namespace {

constexpr std::string_view kClientIdPlaceholders[] = {"{user}", "{client_id}", "{connection_id}"};

// The placeholder `pattern` holds at `at`, if any.
std::string_view placeholder_at(std::string_view pattern, std::size_t at) {
  for (const std::string_view p : kClientIdPlaceholders) {
    if (pattern.substr(at, p.size()) == p) return p;
  }
  return {};
}

// The bytes of the UTF-8 character at `at` (1 for a byte that starts none).
std::size_t character_size(std::string_view text, std::size_t at) {
  const auto lead = static_cast<unsigned char>(text[at]);
  const std::size_t size = lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
  if (at + size > text.size() || !is_valid_utf8(text.substr(at, size))) return 1;
  return size;
}

// `value` with '%' and each character of `separators` percent-encoded: it then never holds the
// text that separates it from the next placeholder. A separator beyond ASCII has every byte
// beyond ASCII encoded (byte by byte, a UTF-8 character would be cut: no valid client id). So
// has what MQTT strings may not hold (control characters such as U+0085 in a certificate's CN,
// noncharacters, bytes that are not UTF-8): the broker would refuse the client id, and the
// client would be told the server is unavailable, for ever.
std::string escaped(std::string_view value, std::string_view separators) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  const auto beyond_ascii = [](char c) { return (static_cast<unsigned char>(c) & 0x80) != 0; };
  const bool separators_beyond_ascii =
      std::any_of(separators.begin(), separators.end(), beyond_ascii);
  std::string out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size();) {
    const std::size_t size = character_size(value, i);
    const std::string_view character = value.substr(i, size);
    i += size;
    const char c = character[0];
    const bool encode =
        c == '%' || !is_valid_mqtt_string(character) ||
        (beyond_ascii(c) ? separators_beyond_ascii : separators.find(c) != std::string_view::npos);
    if (!encode) {
      out += character;
      continue;
    }
    for (const char byte : character) {
      const auto u = static_cast<unsigned char>(byte);
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

}  // namespace

PassthroughRouteConfig PassthroughRouteConfig::from_route(
    ConfigTable& t, const std::string& path,
    const std::map<std::string, UpstreamConfig>& upstreams) {
  using namespace std::chrono_literals;
  PassthroughRouteConfig r;
  r.path = path;
  t.one_of<int>("mode", {{"passthrough", 0}});
  const UpstreamConfig& upstream = read_upstream(t, upstreams, r.upstream);
  r.upstream_url = upstream.uri;
  r.service_username = upstream.username;
  r.service_password = upstream.password;
  for (const char* key :
       {"topic_prefix", "subscribe", "publish_topic", "qos", "retain", "max_qos"}) {
    if (t.contains(key)) {
      t.fail_at(key, "'" + std::string(key) +
                         "' is not for mode = \"passthrough\" routes: the browser's own MQTT "
                         "client decides topics and QoS, and the route's allow_subscribe and "
                         "allow_publish bound them");
    }
  }
  r.allow_subscribe = read_acl_patterns(t, "allow_subscribe");
  r.allow_publish = read_acl_patterns(t, "allow_publish");
  r.subscriptions = read_subscription_bounds(t);
  if (auto id = t.string("client_id")) {
    if (id->find("{user}") == std::string::npos &&
        id->find("{connection_id}") == std::string::npos) {
      t.fail_at("client_id",
                "'client_id' must contain {user} or {connection_id}: otherwise one user could "
                "take over another's MQTT session by choosing the same client id");
    }
    std::string rest = *id;
    for (const std::string_view p : kClientIdPlaceholders) {
      for (auto at = rest.find(p); at != std::string::npos; at = rest.find(p)) {
        rest.erase(at, p.size());
      }
    }
    if (rest.find_first_of("{}") != std::string::npos) {
      t.fail_at("client_id",
                "'client_id' knows the placeholders {user}, {client_id} and {connection_id} only");
    }
    if (id->find("}{") != std::string::npos) {
      t.fail_at("client_id",
                "'client_id' placeholders must be separated by text (\"{user}:{client_id}\"): "
                "run together, two users' ids could be the same");
    }
    r.client_id = *id;
  }
  if (auto v = t.one_of<bool>("denied_publish", {{"drop", false}, {"disconnect", true}})) {
    r.disconnect_on_denied_publish = *v;
  }
  if (auto v = t.duration("mqtt_connect_timeout", 1s, 3600s)) r.connect_timeout = *v;
  if (auto v = t.duration("keepalive_min", 1s, 65535s)) {
    r.keepalive_min = std::chrono::duration_cast<std::chrono::seconds>(*v);
  }
  if (auto v = t.duration("keepalive_max", 1s, 65535s)) {
    r.keepalive_max = std::chrono::duration_cast<std::chrono::seconds>(*v);
  }
  if (r.keepalive_min > r.keepalive_max) {
    t.fail_at(t.contains("keepalive_min") ? "keepalive_min" : "keepalive_max",
              "'keepalive_min' must not exceed 'keepalive_max'");
  }
  if (auto v = t.byte_size("max_packet_bytes", 64, 256ull * 1024 * 1024)) {
    r.max_packet_bytes = static_cast<std::size_t>(*v);
  }
  if (auto v = t.integer("publish_rate", 0, 1'000'000)) r.publish_rate = static_cast<double>(*v);
  if (auto v = t.integer("publish_burst", 1, 10'000'000)) {
    if (r.publish_rate == 0) t.fail_at("publish_burst", "'publish_burst' needs a 'publish_rate'");
    r.publish_burst = static_cast<double>(*v);
  }
  if (r.publish_rate > 0 && r.publish_burst == 0) r.publish_burst = std::max(r.publish_rate, 1.0);
  return r;
}

std::string expand_client_id(const std::string& pattern, const std::string& user,
                             bool authenticated, const std::string& client_id,
                             const std::string& connection_id) {
  // No value a user or client chooses may hold the text that separates it from the next
  // placeholder, where it would move the boundary between the two: {user} is always escaped
  // (and a user really named "anonymous" told apart from the anonymous), {client_id} when a
  // placeholder follows it. The ids of users without those characters stay as they were.
  std::string out;
  for (std::size_t i = 0; i < pattern.size();) {
    const std::string_view p = placeholder_at(pattern, i);
    if (p.empty()) {
      out += pattern[i++];
      continue;
    }
    i += p.size();
    const std::size_t next = pattern.find('{', i);  // (braces mark placeholders only)
    const std::string_view separators = next == std::string::npos
                                            ? std::string_view()
                                            : std::string_view(pattern).substr(i, next - i);
    if (p == "{user}") {
      if (user.empty()) {
        // (No escaped name starts "%a": escapes are '%' and two upper-case hex digits.)
        out += authenticated ? "%authenticated" : "anonymous";
      } else if (user == "anonymous") {
        out += "%61" + escaped(std::string_view(user).substr(1), separators);
      } else {
        out += escaped(user, separators);
      }
    } else if (p == "{client_id}") {
      out += next != std::string::npos ? escaped(client_id, separators) : client_id;
    } else {
      out += connection_id;
    }
  }
  return out;
}

}  // namespace wsbridge::mqtt
