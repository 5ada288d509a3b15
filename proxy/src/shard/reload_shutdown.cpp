// SIGHUP and SIGTERM: swapping in a new configuration (and releasing replaced ones), and the
// drain-then-close shutdown. A reload is decided once, by shard 0, which starts the new adapters
// and passes the configuration on to the other shards; each shard lets a replaced configuration
// go when none of its own sessions uses it any more, and the last one stops its adapters.
#include "shard/shard_parts.hpp"

namespace wsbridge {

void Shard::request_reload(std::shared_ptr<ServerConfig> config) {
  InboxCommand command;
  command.type = InboxCommand::Type::kReload;
  command.config = std::move(config);
  if (!inbox_->post(std::move(command))) {
    WSB_LOG(kWarn) << "reload ignored: the server is not running";
  }
}

std::string Shard::restart_needed_for(const ServerConfig& next) const {
  const ServerConfig& now = *config_;
  if (next.effective_threads() != shared_.count) return "[server] threads changed";
  if (next.listeners.size() != now.listeners.size()) return "the listeners changed";
  for (std::size_t i = 0; i < next.listeners.size(); ++i) {
    const ListenerConfig& a = now.listeners[i];
    const ListenerConfig& b = next.listeners[i];
    // (Compression is decided per upgrade: new connections get the new settings.)
    if (a.address != b.address || a.port != b.port) {
      return "listener " + std::to_string(i + 1) + " changed its address or port";
    }
    // The certificates, protocol floor, ciphers and client-certificate policy reload; whether
    // the port speaks TLS at all (and whether lws adds an HSTS header) is fixed at start.
    if ((a.tls != nullptr) != (b.tls != nullptr) || a.redirect_to_https != b.redirect_to_https) {
      return "listener " + std::to_string(i + 1) + " changed between plain, TLS and redirect";
    }
    if (a.tls && a.tls->settings().hsts.empty() != b.tls->settings().hsts.empty()) {
      return "listener " + std::to_string(i + 1) + " added or removed its hsts header";
    }
  }
  if (now.admin.has_value() != next.admin.has_value() ||
      (now.admin &&
       (now.admin->address != next.admin->address || now.admin->port != next.admin->port))) {
    return "the admin listener changed";
  }
  if (now.instance_id != next.instance_id) return "instance_id changed";
  if (now.fallback.secret != next.fallback.secret) return "the [fallback] secret changed";
  if (now.cluster != next.cluster) return "[cluster] changed";
  if (now.static_dir != next.static_dir || now.index_file != next.index_file) {
    return "static_dir or index_file changed";
  }
  for (const auto& route : next.routes) {
    for (const auto& name : route.subprotocols) {
      if (std::find(lws_tables_->protocol_names.begin(), lws_tables_->protocol_names.end(), name) ==
          lws_tables_->protocol_names.end()) {
        return "route " + route.path + " has a new subprotocol \"" + name + "\"";
      }
    }
  }
  return "";
}

void Shard::apply_reload(std::shared_ptr<ServerConfig> next) {
  if (stopping_) return;
  if (const std::string why = restart_needed_for(*next); !why.empty()) {
    core_metrics::config_reload(
        "refused");  // (counted first: whoever reads the log finds the metric up to date)
    if (next->has_tls()) core_metrics::tls_certificate_reload("refused");
    WSB_LOG(kError) << "reload of " << next->file << " refused: " << why
                    << " (that needs a restart); keeping the current configuration";
    return;
  }
  try {
    next->http_client->attach(context_, index_);
  } catch (const std::exception& e) {
    core_metrics::config_reload("refused");
    if (next->has_tls()) core_metrics::tls_certificate_reload("refused");
    WSB_LOG(kError) << "reload of " << next->file << " refused: " << e.what()
                    << "; keeping the current configuration";
    return;
  }
  for (const auto& kind : next->kinds) kind->start();
  for (Shard* other : shared_.shards) {
    if (other == this) continue;
    InboxCommand command;
    command.type = InboxCommand::Type::kReloadFollow;
    command.config = next;
    other->inbox_->post(std::move(command));
  }
  swap_config(std::move(next));
  core_metrics::config_reload("ok");
  if (config_->has_tls()) core_metrics::tls_certificate_reload("ok");
  WSB_LOG(kInfo) << "configuration reloaded from " << config_->file << ": "
                 << config_->routes.size() << " route(s); " << shared_.sessions.size()
                 << " open connection(s) keep the configuration they were admitted under";
  warn_of_config_risks();
}

void Shard::follow_reload(std::shared_ptr<ServerConfig> next) {
  if (stopping_) return;
  try {
    next->http_client->attach(context_, index_);
  } catch (const std::exception& e) {
    // (Shard 0 attached the same backends, so this does not happen short of running out of
    // memory; this shard then keeps serving under the configuration it has.)
    WSB_LOG(kError) << "shard " << index_
                    << " cannot take the reloaded configuration: " << e.what();
    return;
  }
  swap_config(std::move(next));
}

void Shard::swap_config(std::shared_ptr<ServerConfig> next) {
  retired_configs_.push_back(std::move(config_));
  config_ = std::move(next);
  adopt_config_tables();
  close_sessions_of_withdrawn_fallbacks();
  release_retired_configs(false);
}

// A reload that took a route's HTTP fallbacks away (fallback = false, [fallback] off, or the route
// gone) leaves its sessions' POSTs refused with 404 (the route no longer offers them): closed
// instead, with 1012 as at a restart, carried by their stream or next poll (serve_fallback lets
// those through), so that the client reconnects under the new configuration. (They lived on
// half alive: the stream went on, every message sent was refused, and the client was never
// told.)
void Shard::close_sessions_of_withdrawn_fallbacks() {
  for (auto& [id, transport] : fallback_sessions_) {
    Session& s = *sessions_.at(id);
    const RouteConfig* route = config_->find_route(s.route->path);
    if (s.closing() || (config_->fallback.enabled && route != nullptr && route->fallback)) continue;
    WSB_LOG(kInfo) << "conn " << id << ": the reload took the HTTP fallbacks of " << s.route->path
                   << " away, closing its fallback session with 1012";
    request_close(s, kServiceRestart, restart_reason(), true);
  }
}

void Shard::release_retired_configs(bool at_exit) {
  for (auto it = retired_configs_.begin(); it != retired_configs_.end();) {
    const ServerConfig& old = **it;
    std::size_t busy = old.http_client->in_flight();
    for (const auto& kind : old.kinds) busy += kind->in_flight();
    // None of this shard's sessions uses it, and its adapters are done.
    const bool used = std::any_of(sessions_.begin(), sessions_.end(), [&](const auto& entry) {
      return entry.second->config.get() == &old;
    });
    if (!at_exit && (used || busy > 0)) {
      ++it;
      continue;
    }
    old.http_client->shutdown(index_);  // while its adapters still exist to hear about it
    // The last shard to let it go stops its adapters.
    if (shared_.let_go(&old)) {
      for (const auto& kind : old.kinds) kind->stop();
    }
    // (At exit, sessions still open keep using their route's metrics until the context goes.)
    if (!at_exit) {
      for (const auto& route : old.routes) route_metrics_.erase(&route);
    }
    WSB_LOG(kDebug) << "released a replaced configuration";
    it = retired_configs_.erase(it);
  }
}

void Shard::request_shutdown() {
  shutdown_requested_.store(true);
  InboxCommand command;
  command.type = InboxCommand::Type::kShutdown;
  inbox_->post(std::move(command));
}

void Shard::begin_shutdown() {
  if (stopping_) return;
  stopping_ = true;
  const auto now = SteadyClock::now();
  shutdown_deadline_ = now + config_->shutdown_timeout;
  // Three quarters of the shutdown timeout for in-flight work; the rest for the closing
  // handshakes.
  drain_deadline_ = now + config_->shutdown_timeout * 3 / 4;
  draining_ = true;
  // No new work: stop reading from every client (TCP holds what they send meanwhile).
  for (auto& [id, session] : sessions_) {
    if (!session->reading_paused) session->transport->set_reading(false);
  }
  const std::size_t in_flight = work_in_flight();
  if (index_ == 0) {  // (once for the process: every shard is told at the same time)
    WSB_LOG(kInfo) << "shutting down: " << shared_.sessions.size() << " connection(s), "
                   << in_flight << " request(s) in flight to upstreams";
  }
  // The loop wakes at the drain's end, not at the timer's next sweep: the closes need the rest of
  // the timeout. (Not an lws sul: lws 4.1.6's libev glue never brings its timer forward, it
  // re-sets its active ev_timer, which libev ignores; the drain ended up to a sweep period late,
  // past the whole shutdown_timeout, and every client was dropped without its 1012.)
  event_loop_.wake_after(until_deadline(now));
  // Wake the loop so it re-checks its exit condition even when there is nothing to wait for.
  lws_cancel_service(context_);
}

std::chrono::milliseconds Shard::until_deadline(SteadyClock::time_point now) const {
  const SteadyClock::time_point deadline = draining_ ? drain_deadline_ : shutdown_deadline_;
  if (deadline <= now) return std::chrono::milliseconds(1);  // (the loop ends within a turn)
  return std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
}

std::size_t Shard::work_in_flight() const {
  std::size_t n = 0;
  auto add = [&n](const ServerConfig& c) {
    n += c.http_client->in_flight();
    for (const auto& kind : c.kinds) n += kind->in_flight();
  };
  add(*config_);
  for (const auto& old : retired_configs_) add(*old);
  if (proxy_) n += proxy_->exchanges_in_flight();  // relayed requests of this shard
  return n;
}

void Shard::finish_draining() {
  draining_ = false;
  const std::size_t left = work_in_flight();
  if (left > 0) {
    WSB_LOG(kWarn) << "shutdown: " << left << " request(s) still in flight after the drain time";
  }
  // (Once for the process, by the last shard to get here: they all drain the same work.)
  if (auto total = shared_.closing(sessions_.size())) {
    WSB_LOG(kInfo) << "closing " << *total << " connection(s) with 1012";
  }
  for (auto& [id, session] : sessions_) {
    request_close(*session, kServiceRestart, restart_reason(), true);
  }
  // A fallback session no request carries cannot be told: it ends now, not at the deadline.
  for (auto& [id, transport] : fallback_sessions_) {
    if (!transport->carried()) transport->drop_within(std::chrono::seconds(0));
  }
  event_loop_.wake_after(until_deadline(SteadyClock::now()));  // (the shutdown's own deadline)
  lws_cancel_service(context_);
}

}  // namespace wsbridge
