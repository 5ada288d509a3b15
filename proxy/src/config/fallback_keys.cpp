#include "config/fallback_keys.hpp"

#include "stream/lws_stream_client.hpp"

namespace wsbridge {

using namespace std::chrono_literals;

namespace {

std::chrono::seconds whole_seconds(ConfigTable& t, std::string_view key,
                                   std::chrono::milliseconds value) {
  if (value % 1000ms != 0ms) t.fail_at(key, "'" + std::string(key) + "' is in whole seconds");
  return std::chrono::duration_cast<std::chrono::seconds>(value);
}

}  // namespace

fallback::Settings read_fallback_keys(ConfigTable& t) {
  fallback::Settings s;
  s.enabled = t.boolean("enabled").value_or(true);
  if (auto v = t.secret("secret")) {
    if (v->size() < 32) t.fail_at("secret", "'secret' must be at least 32 bytes");
    s.secret = *v;
  }
  if (auto v = t.byte_size("sse_byte_limit", 4096, 1ull << 30)) s.sse_byte_limit = *v;
  if (auto v = t.duration("heartbeat", 1s, 10min)) s.heartbeat = whole_seconds(t, "heartbeat", *v);
  if (auto v = t.duration("poll_timeout", 1s, 10min)) {
    s.poll_timeout = whole_seconds(t, "poll_timeout", *v);
  }
  if (auto v = t.duration("reconnect_window", 1s, 1h)) {
    s.reconnect_window = whole_seconds(t, "reconnect_window", *v);
  }
  if (auto v = t.byte_size("resume_buffer_bytes", 0, 1ull << 30)) s.resume_buffer_bytes = *v;
  if (auto v = t.byte_size("max_post_bytes", 1024, 1ull << 30)) s.max_post_bytes = *v;
  if (auto v = t.byte_size("post_bytes_in_flight", 1024, 1ull << 40)) s.post_bytes_in_flight = *v;
  if (s.post_bytes_in_flight < s.max_post_bytes) {
    t.fail_at(t.contains("post_bytes_in_flight") ? "post_bytes_in_flight" : "max_post_bytes",
              "'post_bytes_in_flight' must be at least 'max_post_bytes' (" +
                  std::to_string(s.max_post_bytes) + "), or no POST of that size could arrive");
  }
  if (auto v = t.duration("token_lifetime", 10s, 24h * 30)) {
    s.token_lifetime = std::chrono::ceil<std::chrono::seconds>(*v);
  }
  if (auto peers = t.table("peers")) {
    for (const auto& [key, node] : peers->raw()) {
      const std::string name(key.str());
      const auto url = peers->string(name);
      if (!url) continue;
      const bool tls = url->starts_with("https://");
      if (!tls && !url->starts_with("http://")) {
        peers->fail_at(name, "a peer is \"http://host:port\" or \"https://host:port\"");
      }
      std::string host = url->substr(tls ? 8 : 7);
      if (!host.empty() && host.back() == '/') host.pop_back();
      if (host.empty() || host.find('/') != std::string::npos ||
          host.find(':') == std::string::npos) {
        peers->fail_at(name, "a peer is \"http://host:port\" or \"https://host:port\" (no path)");
      }
      auto peer = std::make_shared<fallback::Peer>();
      peer->url = *url;
      peer->host = host;
      StreamOptions options;
      options.url = (tls ? "ssl://" : "tcp://") + host;
      options.connect_timeout = std::chrono::seconds(5);
      try {
        peer->endpoint = LwsStreamClient::instance().endpoint(options);
      } catch (const std::invalid_argument& e) {
        peers->fail_at(name, std::string("peer ") + name + ": " + e.what());
      }
      s.peers.emplace(name, std::move(peer));
    }
  }
  if (s.poll_timeout >= s.reconnect_window) {
    t.fail_at(t.contains("poll_timeout") ? "poll_timeout" : "reconnect_window",
              "'poll_timeout' must be shorter than 'reconnect_window', or a session would end "
              "between two polls");
  }
  t.reject_unknown_keys();
  return s;
}

}  // namespace wsbridge
