// A shard starting and stopping: its lws context and mounts (the listeners' vhosts:
// listener_vhosts.cpp), the loop in serve(), and what is torn down after it.
#include "shard/shard_parts.hpp"

#include <sys/resource.h>

#include <stdexcept>

#include "handshake/bearer_subprotocol.hpp"
#include "handshake/ip_address.hpp"
#include "handshake/upgrade_hold.hpp"
#include "http/static_files.hpp"
#include "reverse_proxy/tunnel_exposure.hpp"
#include "server/this_shard.hpp"
#include "stream/lws_stream_client.hpp"

namespace wsbridge {

namespace {

int protocol_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in,
                      std::size_t len) {
  return Shard::lws_callback(wsi, static_cast<int>(reason), user, in, len);
}

}  // namespace

Shard::Shard(std::shared_ptr<ServerConfig> config, ShardShared& shared, unsigned index)
    : config_(std::move(config)),
      lws_tables_(std::make_unique<LwsTables>()),
      timer_(std::make_unique<Timer>()),
      shared_(shared),
      index_(index) {
  timer_->shard = this;
  adopt_config_tables();
}

void Shard::adopt_config_tables() {
  for (const auto& route : config_->routes) {
    route_metrics_[&route] = std::make_unique<RouteMetrics>(route.path);
  }
  // Check often enough to honour the shortest ping interval or idle timeout within a quarter of
  // it, but never more than 20 times a second nor less than once a second.
  std::chrono::milliseconds shortest = 4s;
  for (const auto& route : config_->routes) {
    shortest = std::min({shortest, route.ping_interval, route.idle_timeout});
  }
  sweep_period_ =
      std::clamp(shortest / 4, std::chrono::milliseconds(50), std::chrono::milliseconds(1000));
  listener_of_vhost_.clear();
  for (std::size_t i = 0; i < listener_vhosts_.size() && i < config_->listeners.size(); ++i) {
    const ListenerConfig& listener = config_->listeners[i];
    listener_of_vhost_[listener_vhosts_[i]] = &listener;
    // New handshakes get the certificates just loaded; open connections keep their session.
    if (i < lws_tables_->tls_slots.size() && listener.tls) {
      lws_tables_->tls_slots[i].adopt(listener.tls);
      if (index_ == 0) listener.tls->publish_expiry();
    }
  }
  // (The HSTS value may change at a reload; whether there is one needs a restart.)
  for (std::size_t i = 0;
       i < lws_tables_->own_answer_headers.size() && i < config_->listeners.size(); ++i) {
    lws_tables_->own_answer_headers[i] = own_answer_lines(config_->listeners[i]);
  }
  std::size_t hsts = 0;
  for (const auto& listener : config_->listeners) {
    if (listener.tls && !listener.tls->settings().hsts.empty() &&
        hsts < lws_tables_->hsts_headers.size()) {
      lws_tables_->hsts_headers[hsts++].value = listener.tls->settings().hsts.c_str();
    }
  }
}

Shard::~Shard() {
  if (context_ != nullptr) {
    inbox_->detach();
    destroying_ = true;
    lws_context_destroy(context_);
  }
}

void Shard::open() {
  // lws keeps pointers into the protocols, mounts and vhost names for the context's lifetime, so
  // they live in the Shard, not on this stack frame.
  auto& protocols = lws_tables_->protocols;
  auto add_protocol = [&](const std::string& name) {
    for (const auto& p : protocols) {
      if (name == p.name) return;
    }
    lws_protocols p{};
    p.name = lws_tables_->protocol_names.emplace_back(name).c_str();
    p.callback = protocol_callback;
    p.per_session_data_size = 0;  // the user data is ours: Shard::ConnectionData
    p.rx_buffer_size = kRxChunkBytes;
    p.tx_packet_size = kTxChunkBytes;
    p.user = this;
    protocols.push_back(p);
  };
  add_protocol(kProtocolName);
  // Known to lws so it can select them for MQTT clients on routes that refuse them in MQTT.
  add_protocol("mqtt");
  add_protocol("mqttv3.1");
  for (const auto& route : config_->routes) {
    for (const auto& name : route.subprotocols) add_protocol(name);
  }
  protocols.push_back(lws_protocols{});  // terminator

  lws_context_creation_info info{};
  // No LWS_SERVER_OPTION_VALIDATE_UTF8: the session validates text itself (wsbridge/utf8.hpp
  // says why).
  info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  for (const auto& listener : config_->listeners) {
    if (listener.tls) info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  }
  info.user = this;
  info.gid = static_cast<gid_t>(-1);
  info.uid = static_cast<uid_t>(-1);
  // A connection must finish its HTTP request (and upgrade) within this, or lws drops it.
  info.timeout_secs = static_cast<unsigned>(config_->limits.handshake_timeout.count());
  info.timeout_secs_ah_idle = info.timeout_secs;
  // Heads up to mask_guard::kMaxRequestHeadBytes (8 KiB tokens and more); the guard answers 431
  // beyond, where lws' default 4 KiB would drop the connection without a word.
  info.max_http_header_data = mask_guard::kLwsHeaderSpace;
  // lws' slots for header lines and query arguments, of which the request line takes two more.
  static_assert(RequestHeadFilter::kMaxFieldsAndArguments + 2 < WSI_TOKEN_COUNT - 1);
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
    fd_limit_ = static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1 << 30));
    // Lingering closes hold at most a quarter of the descriptors, shared by the threads.
    lingering_.set_max_sockets(std::min<std::size_t>(
        4096, static_cast<std::size_t>(fd_limit_) / 4 / std::max(1u, shared_.count)));
  }
  event_loop_.configure(info);
  context_ = lws_create_context(&info);
  if (context_ == nullptr) {
    throw std::runtime_error(
        "cannot create the libwebsockets context (is Debian's libwebsockets-evlib-ev installed? "
        "scripts/install-deps.sh installs it)");
  }
  if (config_->static_dir) static_files::confine(context_, *config_->static_dir);
  config_->http_client->attach(context_, index_);
  LwsStreamClient::instance().attach(context_, index_);

  // Static files at "/" when configured; the health endpoint always comes to our callback.
  lws_http_mount& health_mount = lws_tables_->health_mount;
  lws_http_mount& files_mount = lws_tables_->files_mount;
  std::string& static_origin = lws_tables_->static_origin;
  static_origin = config_->static_dir ? config_->static_dir->string() : "";
  health_mount.mountpoint = kHealthPath.data();
  health_mount.mountpoint_len = static_cast<unsigned char>(kHealthPath.size());
  health_mount.origin = kProtocolName;
  health_mount.origin_protocol = LWSMPRO_CALLBACK;
  // (Its own mount, so static files at "/" do not take it; the prefix without its slash.)
  lws_http_mount& fallback_mount = lws_tables_->fallback_mount;
  health_mount.mount_next = &fallback_mount;
  fallback_mount.mountpoint = kFallbackPrefix.data();
  fallback_mount.mountpoint_len = static_cast<unsigned char>(kFallbackPrefix.size() - 1);
  fallback_mount.origin = kProtocolName;
  fallback_mount.origin_protocol = LWSMPRO_CALLBACK;
  if (config_->static_dir) {
    fallback_mount.mount_next = &files_mount;
    files_mount.mountpoint = "/";
    files_mount.mountpoint_len = 1;
    files_mount.origin = static_origin.c_str();
    files_mount.def = config_->index_file.c_str();
    files_mount.origin_protocol = LWSMPRO_FILE;
  }

  open_listeners(health_mount);
}

// Said at start and at each reload. A public [[proxy]] prefix that relays upgrades to a guarded
// prefix's backend (reverse_proxy/tunnel_exposure.hpp). A peer that forwards fallback requests
// here counts as one client address unless it is a trusted proxy (docs/DEPLOY.md): said for peers
// given by address (a name's addresses are not known here).
void Shard::warn_of_config_risks() const {
  for (const std::string& warning : reverse_proxy::tunnel_exposure_warnings(config_->proxies)) {
    WSB_LOG(kWarn) << warning;
  }
  for (const auto& [name, peer] : config_->fallback.peers) {
    std::string host = peer->host.substr(0, peer->host.rfind(':'));  // (host[:port], copied)
    if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
    if (!parse_ip_address(host) || config_->trusted_proxies.trusts(host)) continue;
    WSB_LOG(kWarn) << "[fallback] peers: " << name << " (" << host
                   << ") is not in [server] trusted_proxies: the requests it forwards here count "
                      "against the per-address limits as one client (docs/DEPLOY.md)";
  }
}

void Shard::serve() {
  this_shard::set_index(index_);
  inbox_->attach(context_, this);
  schedule_timer(sweep_period_);
  ready_.store(true, std::memory_order_release);
  if (shutdown_requested_.load()) begin_shutdown();

  event_loop_.bind_to_this_thread();
  // lws arms its timer and runs what it deferred (decrypted TLS bytes, buffered reads) only after
  // a socket event of its own: work done on this loop outside one wakes the loop once more.
  lws_cancel_service(context_);
  while (true) {
    event_loop_.run_once();
    bool outside_lws = !plaintext_waiting_.empty() || holds_answered_ || !takeovers_.empty() ||
                       !handed_sockets_.empty();
    if (!requests_waiting_.empty()) pause_waiting_requests();
    if (!plaintext_waiting_.empty()) serve_waiting_plaintext();
    if (holds_answered_) release_held_upgrades();
    if (!takeovers_.empty()) take_over_sockets();
    if (!handed_sockets_.empty()) adopt_handed_sockets();
    // (The closes it asks for get a loop turn to be written, even past the deadline.)
    bool closes_asked = false;
    if (draining_ && (work_in_flight() == 0 || SteadyClock::now() >= drain_deadline_)) {
      finish_draining();
      outside_lws = true;
      closes_asked = true;
    }
    if (!writes_soon_.empty() && write_soon()) outside_lws = true;
    // The fallback transports' turns, then what they gave their carriers. What that work
    // does to sessions and lws (a close, a timer) needs lws to run: one wake-up more.
    if (!fallback_turns_due_.empty()) {
      run_fallback_turns();
      outside_lws = true;
    }
    if (!carriers_soon_.empty() && write_carriers_soon()) outside_lws = true;
    // After every answer of this turn: the connections lws would read again only after a POLLOUT.
    // (A request it already holds is served from lws' next turn.)
    if (keep_alive_resumes_.count > 0) {
      resume_keep_alive_connections();
      outside_lws = true;
    }
    // Queued by what ran just above (an adapter told of a drain): the next turn, at once.
    if (!writes_soon_.empty() || !fallback_turns_due_.empty() || !carriers_soon_.empty()) {
      outside_lws = true;
    }
    if (outside_lws) lws_cancel_service(context_);
    // (Requests this shard carries for sessions of other shards wait for their answer too: a
    // held POST's 410, a poll's or a stream's close. A shard with no session of its own left
    // first, and closed them unanswered.)
    if (stopping_ && !draining_ && !closes_asked &&
        ((sessions_.empty() && carriers_.empty()) || SteadyClock::now() >= shutdown_deadline_)) {
      break;
    }
  }
  if (!sessions_.empty()) {
    WSB_LOG(kWarn) << "shutdown timeout: dropping " << sessions_.size() << " connection(s)";
  }
  // Fallback sessions are not lws connections: the context's teardown would not end them.
  std::vector<Session*> fallback_left;
  for (const auto& [id, transport] : fallback_sessions_) fallback_left.push_back(sessions_.at(id));
  for (Session* s : fallback_left) end_fallback_session(*s);
  expire_fallback_opens(SteadyClock::now(), true);

  inbox_->detach();
  config_->http_client->shutdown(index_);  // answers what is still waiting while adapters hear it
  relays_.clear();                         // (their streams close with them)
  if (proxy_) proxy_->shutdown();          // (before the stream client lets go of its streams)
  proxy_.reset();
  const auto vhost_of = [this](std::size_t listener) {
    return listener < listener_vhosts_.size() ? listener_vhosts_[listener] : nullptr;
  };
  for (reverse_proxy::Takeover& t : takeovers_) {
    upgrade_hold::reply_and_close(t.fd, 503, "shutting down", t.ssl,
                                  own_answer_headers(vhost_of(t.listener)));
  }
  LwsStreamClient::instance().detach(index_);  // streams still open go with the context
  release_retired_configs(true);
  for (auto& [id, held] : held_) {
    upgrade_hold::reply_and_close(held.fd, 503, "shutting down", held.ssl,
                                  own_answer_headers(held.vhost));
  }
  for (HandedSocket& handed : handed_sockets_) {
    upgrade_hold::reply_and_close(handed.fd, 503, "shutting down", handed.ssl,
                                  own_answer_headers(vhost_of(handed.listener)));
  }
  handed_sockets_.clear();
  held_.clear();
  destroying_ = true;
  lws_sul_cancel(&timer_->sul);
  event_loop_.cancel_wake();
  lws_context_destroy(context_);
  context_ = nullptr;
}

void Shard::refuse_for_descriptors() {
  core_metrics::upgrade_refused("fd_limit");
  if (fd_warnings_.due()) {
    WSB_LOG(kWarn) << "near the open-file limit (" << fd_limit_
                   << "): refusing new connections until some close (raise LimitNOFILE / "
                      "ulimit -n, or lower [limits] max_connections)";
  }
}

}  // namespace wsbridge
