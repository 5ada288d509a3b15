#include "passthrough/passthrough_config.hpp"

namespace wsbridge::mqtt {

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
    for (const char* p : {"{user}", "{client_id}", "{connection_id}"}) {
      for (auto at = rest.find(p); at != std::string::npos; at = rest.find(p)) {
        rest.erase(at, std::string(p).size());
      }
    }
    if (rest.find_first_of("{}") != std::string::npos) {
      t.fail_at("client_id",
                "'client_id' knows the placeholders {user}, {client_id} and {connection_id} only");
    }
    r.client_id = *id;
  }
  if (auto v = t.one_of<bool>("denied_publish", {{"drop", false}, {"disconnect", true}})) {
    r.disconnect_on_denied_publish = *v;
  }
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
                             const std::string& client_id, const std::string& connection_id) {
  std::string out;
  for (std::size_t i = 0; i < pattern.size();) {
    auto take = [&](std::string_view name, const std::string& value) {
      if (pattern.compare(i, name.size(), name) != 0) return false;
      out += value;
      i += name.size();
      return true;
    };
    if (take("{user}", user.empty() ? "anonymous" : user) || take("{client_id}", client_id) ||
        take("{connection_id}", connection_id)) {
      continue;
    }
    out += pattern[i++];
  }
  return out;
}

}  // namespace wsbridge::mqtt
