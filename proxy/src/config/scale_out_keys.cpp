#include "config/scale_out_keys.hpp"

#include <unistd.h>

#include "cluster/instance_identity.hpp"
#include "config/server_config.hpp"

namespace wsbridge {

using namespace std::chrono_literals;

std::string default_instance_id() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::string id;
  for (const char c : std::string_view(host)) {
    id.push_back(is_valid_instance_id(std::string_view(&c, 1)) ? c : '-');
  }
  if (id.empty() || id.size() > 48) id = id.empty() ? "wsbridge" : id.substr(0, 48);
  return id + ":" + std::to_string(getpid());
}

void read_instance_keys(ConfigTable& server, ServerConfig& config) {
  if (auto id = server.string("instance_id")) {
    if (!is_valid_instance_id(*id)) {
      server.fail_at("instance_id",
                     "'instance_id' in [server] is 1 to 64 letters, digits, '.', '_', ':' or '-'");
    }
    config.instance_id = *id;
  }
  if (auto v = server.duration("drain_delay", 0ms, 10min)) config.drain_delay = *v;
  if (auto v = server.duration("reconnect_spread", 0ms, 1h)) config.reconnect_spread = *v;
  if (auto list = server.string_array("trusted_proxies")) {
    std::string problem;
    auto proxies = TrustedProxies::parse(*list, &problem);
    if (!proxies) server.fail_at("trusted_proxies", "'trusted_proxies' in [server]: " + problem);
    config.trusted_proxies = std::move(*proxies);
  }
}

cluster::Settings read_cluster_keys(ConfigTable& t) {
  cluster::Settings s;
  s.enabled = true;
  s.broker = t.required_string("broker");
  if (!s.broker.starts_with("tcp://") && !s.broker.starts_with("ssl://")) {
    t.fail_at("broker", "'broker' in [cluster] is \"tcp://host:port\" or \"ssl://host:port\"");
  }
  s.username = t.string("username");
  s.password = t.secret("password");
  s.ca_file = t.string("ca_file");
  if (s.ca_file && !s.broker.starts_with("ssl://")) {
    t.fail_at("ca_file", "'ca_file' in [cluster] is for an ssl:// broker");
  }
  auto secret = t.secret("secret");  // (or secret_env, like every secret)
  if (!secret) {
    t.fail(
        "missing required key 'secret' in [cluster]: the same 32 or more bytes on every "
        "instance, which sign the control messages");
  }
  s.secret = std::move(*secret);
  if (s.secret.size() < 32) t.fail_at("secret", "'secret' in [cluster] must be at least 32 bytes");
  if (auto prefix = t.string("control_prefix")) {
    const bool ok = prefix->size() >= 2 && prefix->front() == '$' && prefix->back() != '/' &&
                    prefix->find_first_of("+#") == std::string::npos &&
                    prefix->find("//") == std::string::npos && prefix->size() <= 200;
    if (!ok) {
      t.fail_at("control_prefix",
                "'control_prefix' in [cluster] is a topic starting with '$' (no wildcards, no "
                "trailing '/'), e.g. \"$wsbridge\": MQTT wildcards never match '$' topics");
    }
    s.control_prefix = *prefix;
  }
  if (auto v = t.duration("request_timeout", 100ms, 1min)) s.request_timeout = *v;
  if (auto v = t.duration("presence_interval", 1s, 10min)) s.presence_interval = *v;
  t.reject_unknown_keys();
  return s;
}

}  // namespace wsbridge
