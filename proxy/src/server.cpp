#include "server.hpp"

#include <libwebsockets.h>

#include <openssl/crypto.h>
#include <sys/resource.h>
#include <algorithm>
#include <cstring>
#include <deque>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>

#include "admin_guard.hpp"
#include "deflate_guard.hpp"
#include "http_reply.hpp"
#include "mqtt_refusal.hpp"
#include "request_framing.hpp"
#include "static_files.hpp"
#include "upgrade_hold.hpp"
#include "version.hpp"
#include "wsbridge/log.hpp"
#include "wsbridge/metrics.hpp"

static_assert(LWS_PRE <= wsbridge::kFrameHeadroom, "Frame headroom must fit LWS_PRE");

namespace wsbridge {

namespace {

using namespace std::chrono_literals;

constexpr const char* kProtocolName = "wsbridge";
// lws reads at most this much per RECEIVE callback and allocates it for every connection (its
// rx_ubuf): 512 B instead of 4 KiB saves 3.5 KiB per idle connection, the largest share of what
// one costs. Messages are reassembled by us up to the route's max_message_bytes; larger ones
// only take more callbacks.
constexpr std::size_t kRxChunkBytes = 512;
// lws 4.1.6 caps each send() at the protocol's tx_packet_size, or at rx_buffer_size when that is
// 0: without this, batched frames (write_batch) would go out 512 bytes per system call.
constexpr std::size_t kTxChunkBytes = 64 * 1024;
// Connections are refused right after accept() when fewer descriptors than this are left, so
// accept() itself never fails with EMFILE (lws 4.1.6 then spins on its listening socket, a core
// at 100% logging "accept: errno 24", while the client waits in the backlog).
constexpr int kSpareDescriptors = 64;
// How long a decided close may take before the timer drops the connection outright: enough to
// send the close frame and read the peer's answer, or to flush the frames queued before a
// graceful close to a client that still reads.
constexpr auto kImmediateCloseGrace = std::chrono::seconds(5);
constexpr auto kQueuedCloseGrace = std::chrono::seconds(30);

const lws_extension kDeflateExtensions[] = {
    {"permessage-deflate", deflate_guard::callback,
     "permessage-deflate; client_no_context_takeover; client_max_window_bits"},
    {nullptr, nullptr, nullptr}};

// lws' own ping/hangup machinery is parked far away: pings and idle timeouts are per route and
// run by our timer, which counts any frame from the peer (not only PONGs) as a sign of life.
const lws_retry_bo_t kFarAwayValidity = {
    .retry_ms_table = nullptr,
    .retry_ms_table_count = 0,
    .conceal_count = 0,
    .secs_since_valid_ping = 65000,
    .secs_since_valid_hangup = 65535,
    .jitter_percent = 0,
};

std::string header(lws* wsi, lws_token_indexes token) {
  const int len = lws_hdr_total_length(wsi, token);
  if (len <= 0) return {};
  std::string out(static_cast<std::size_t>(len) + 1, '\0');
  const int n = lws_hdr_copy(wsi, out.data(), len + 1, token);
  if (n < 0) return {};
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// A header lws has no token for, by its lower-case name with the colon ("sec-fetch-site:").
std::optional<std::string> custom_header(lws* wsi, const char* name) {
  const int name_len = static_cast<int>(std::strlen(name));
  const int len = lws_hdr_custom_length(wsi, name, name_len);
  if (len < 0) return std::nullopt;
  std::string out(static_cast<std::size_t>(len) + 1, '\0');
  if (lws_hdr_custom_copy(wsi, out.data(), len + 1, name, name_len) < 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(len));
  return out;
}

std::optional<std::string> header_if_present(lws* wsi, lws_token_indexes token) {
  if (lws_hdr_total_length(wsi, token) <= 0) return std::nullopt;
  return header(wsi, token);
}

// The request's body framing (request_framing.hpp), from every Content-Length lws collected.
std::optional<FramingRefusal> framing_problem(lws* wsi, bool upgrade) {
  std::vector<std::string> lengths;
  for (int i = 0;; ++i) {
    const int len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, i);
    if (len <= 0) break;
    std::string value(static_cast<std::size_t>(len) + 1, '\0');
    if (lws_hdr_copy_fragment(wsi, value.data(), len + 1, WSI_TOKEN_HTTP_CONTENT_LENGTH, i) < 0) {
      break;
    }
    value.resize(static_cast<std::size_t>(len));
    lengths.push_back(std::move(value));
  }
  return request_framing_problem(lengths, header_if_present(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING),
                                 upgrade);
}

// The request's query arguments ("k=v", URL-decoded): lws keeps each as a fragment of
// WSI_TOKEN_HTTP_URI_ARGS.
std::vector<std::string> query_arguments(lws* wsi) {
  std::vector<std::string> args;
  for (int i = 0;; ++i) {
    const int len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
    if (len <= 0) break;
    std::string arg(static_cast<std::size_t>(len) + 1, '\0');
    if (lws_hdr_copy_fragment(wsi, arg.data(), len + 1, WSI_TOKEN_HTTP_URI_ARGS, i) < 0) break;
    arg.resize(static_cast<std::size_t>(len));
    args.push_back(std::move(arg));
  }
  return args;
}

std::string peer_address(lws* wsi) {
  char buf[64] = {0};
  lws_get_peer_simple(wsi, buf, sizeof buf);
  std::string_view addr(buf);
  if (addr.starts_with("::ffff:") && addr.find('.') != std::string_view::npos) {
    addr.remove_prefix(7);  // IPv4-mapped IPv6: show the IPv4 address
  }
  return std::string(addr);
}

// A Sec-WebSocket-Key must be the base64 encoding of 16 bytes (RFC 6455 4.2.1).
bool valid_websocket_key(const std::string& key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  return std::all_of(key.begin(), key.begin() + 22, [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/';
  });
}

std::string format_seconds(SteadyClock::duration d) {
  const double s = std::chrono::duration<double>(d).count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3fs", s);
  return buf;
}

// Closes from inside the session's own callback: records how it ended, hands lws the close
// frame's code and reason, and returns the -1 the callback must return.
int close_now(Session& s, std::uint16_t code, const std::string& reason) {
  s.close_info = CloseInfo{code, reason, false};
  s.close_sent = true;
  if (!s.close_deadline) s.close_deadline = SteadyClock::now() + kImmediateCloseGrace;
  lws_close_reason(s.wsi, static_cast<lws_close_status>(code),
                   reinterpret_cast<unsigned char*>(const_cast<char*>(reason.data())),
                   reason.size());
  return -1;
}

int protocol_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in,
                      std::size_t len) {
  return Server::lws_callback(wsi, static_cast<int>(reason), user, in, len);
}

}  // namespace

struct RouteMetrics {
  explicit RouteMetrics(const std::string& route) {
    auto& r = metrics::Registry::global();
    const metrics::Labels l = {{"route", route}};
    open = &r.gauge("wsbridge_connections", "WebSocket connections open now", l);
    opened = &r.counter("wsbridge_connections_total", "WebSocket connections accepted", l);
    messages_in = &r.counter("wsbridge_messages_received_total", "messages from clients", l);
    messages_out = &r.counter("wsbridge_messages_sent_total", "messages to clients", l);
    bytes_in = &r.counter("wsbridge_received_bytes_total", "message bytes from clients", l);
    bytes_out = &r.counter("wsbridge_sent_bytes_total", "message bytes to clients", l);
    queue_drops = &r.counter("wsbridge_queue_overflow_closes_total",
                             "connections closed (1013) because they stopped reading", l);
    rate_limited = &r.counter("wsbridge_rate_limited_messages_total",
                              "messages refused by the route's rate limit", l);
    dropped = &r.counter("wsbridge_dropped_messages_total",
                         "droppable messages discarded for slow clients (drop_oldest)", l);
    reading_paused = &r.gauge("wsbridge_connections_reading_paused",
                              "connections not read from now: their upstream is behind", l);
  }
  metrics::Gauge* open;
  metrics::Counter* opened;
  metrics::Counter* messages_in;
  metrics::Counter* messages_out;
  metrics::Counter* bytes_in;
  metrics::Counter* bytes_out;
  metrics::Counter* queue_drops;
  metrics::Counter* rate_limited;
  metrics::Counter* dropped;
  metrics::Gauge* reading_paused;
};

struct Server::LwsTables {
  // protocols[0] takes HTTP and connections without a subprotocol; one more entry per
  // subprotocol a route accepts (same callback), so lws can select it; then the terminator.
  std::vector<lws_protocols> protocols;
  std::deque<std::string> protocol_names;
  lws_http_mount health_mount{};
  lws_http_mount files_mount{};
  std::string static_origin;
  std::deque<std::string> vhost_names;  // a deque never moves its elements
};

struct Server::Timer {
  lws_sorted_usec_list_t sul;  // first member: the callback casts back from it
  Server* server = nullptr;
};

Server::Server(std::shared_ptr<ServerConfig> config)
    : config_(std::move(config)),
      lws_tables_(std::make_unique<LwsTables>()),
      timer_(std::make_unique<Timer>()) {
  timer_->server = this;
  adopt_config_tables();
}

void Server::adopt_config_tables() {
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
    listener_of_vhost_[listener_vhosts_[i]] = &config_->listeners[i];
  }
}

void Server::request_reload(std::shared_ptr<ServerConfig> config) {
  InboxCommand command;
  command.type = InboxCommand::Type::kReload;
  command.config = std::move(config);
  if (!inbox_->post(std::move(command))) {
    WSB_LOG(kWarn) << "reload ignored: the server is not running";
  }
}

std::string Server::restart_needed_for(const ServerConfig& next) const {
  const ServerConfig& now = *config_;
  if (next.listeners.size() != now.listeners.size()) return "the listeners changed";
  for (std::size_t i = 0; i < next.listeners.size(); ++i) {
    const ListenerConfig& a = now.listeners[i];
    const ListenerConfig& b = next.listeners[i];
    if (a.address != b.address || a.port != b.port ||
        a.permessage_deflate != b.permessage_deflate) {
      return "listener " + std::to_string(i + 1) + " changed its address, port or compression";
    }
  }
  if (now.admin.has_value() != next.admin.has_value() ||
      (now.admin &&
       (now.admin->address != next.admin->address || now.admin->port != next.admin->port))) {
    return "the admin listener changed";
  }
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

void Server::apply_reload(std::shared_ptr<ServerConfig> next) {
  auto count = [](const char* outcome) {
    metrics::Registry::global()
        .counter("wsbridge_config_reloads_total", "configuration reloads (SIGHUP), by outcome",
                 {{"outcome", outcome}})
        .inc();
  };
  if (stopping_) return;
  if (const std::string why = restart_needed_for(*next); !why.empty()) {
    count("refused");  // (counted first: whoever reads the log finds the metric up to date)
    WSB_LOG(kError) << "reload of " << next->file << " refused: " << why
                    << " (that needs a restart); keeping the current configuration";
    return;
  }
  try {
    next->http_client->attach(context_);
  } catch (const std::exception& e) {
    count("refused");
    WSB_LOG(kError) << "reload of " << next->file << " refused: " << e.what()
                    << "; keeping the current configuration";
    return;
  }
  for (const auto& kind : next->kinds) kind->start();
  retired_configs_.push_back(std::move(config_));
  config_ = std::move(next);
  adopt_config_tables();
  count("ok");
  WSB_LOG(kInfo) << "configuration reloaded from " << config_->file << ": "
                 << config_->routes.size() << " route(s); " << sessions_.size()
                 << " open connection(s) keep the configuration they were admitted under";
  release_retired_configs(false);
}

void Server::release_retired_configs(bool at_exit) {
  for (auto it = retired_configs_.begin(); it != retired_configs_.end();) {
    const ServerConfig& old = **it;
    std::size_t busy = old.http_client->in_flight();
    for (const auto& kind : old.kinds) busy += kind->in_flight();
    // Ours is the last reference (no session uses it) and its adapters are done.
    if (!at_exit && (it->use_count() > 1 || busy > 0)) {
      ++it;
      continue;
    }
    old.http_client->shutdown();  // while its adapters still exist to hear about it
    for (const auto& kind : old.kinds) kind->stop();
    // (At exit, sessions still open keep using their route's metrics until the context goes.)
    if (!at_exit) {
      for (const auto& route : old.routes) route_metrics_.erase(&route);
    }
    WSB_LOG(kDebug) << "released a replaced configuration";
    it = retired_configs_.erase(it);
  }
}

Server::~Server() {
  if (context_ != nullptr) {
    inbox_->detach();
    destroying_ = true;
    lws_context_destroy(context_);
  }
}

void Server::run() {
  // lws keeps pointers into the protocols, mounts and vhost names for the context's lifetime, so
  // they live in the Server, not on this stack frame.
  auto& protocols = lws_tables_->protocols;
  auto add_protocol = [&](const std::string& name) {
    for (const auto& p : protocols) {
      if (name == p.name) return;
    }
    lws_protocols p{};
    p.name = lws_tables_->protocol_names.emplace_back(name).c_str();
    p.callback = protocol_callback;
    p.per_session_data_size = sizeof(Session*);
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
  // No LWS_SERVER_OPTION_VALIDATE_UTF8: the session validates text itself (utf8_validator.hpp
  // says why).
  info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  info.user = this;
  info.gid = static_cast<gid_t>(-1);
  info.uid = static_cast<uid_t>(-1);
  // A connection must finish its HTTP request (and upgrade) within this, or lws drops it.
  info.timeout_secs = static_cast<unsigned>(config_->limits.handshake_timeout.count());
  info.timeout_secs_ah_idle = info.timeout_secs;
  // Heads up to mask_guard::kMaxRequestHeadBytes (8 KiB tokens and more); the guard answers 431
  // beyond, where lws' default 4 KiB would drop the connection without a word.
  info.max_http_header_data = mask_guard::kLwsHeaderSpace;
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
    fd_limit_ = static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1 << 30));
  }
  context_ = lws_create_context(&info);
  if (context_ == nullptr) throw std::runtime_error("cannot create the libwebsockets context");
  if (config_->static_dir) static_files::confine(context_, *config_->static_dir);
  inbox_->attach(context_, this);
  config_->http_client->attach(context_);

  // Static files at "/" when configured; the health endpoint always comes to our callback.
  lws_http_mount& health_mount = lws_tables_->health_mount;
  lws_http_mount& files_mount = lws_tables_->files_mount;
  std::string& static_origin = lws_tables_->static_origin;
  static_origin = config_->static_dir ? config_->static_dir->string() : "";
  health_mount.mountpoint = kHealthPath.data();
  health_mount.mountpoint_len = static_cast<unsigned char>(kHealthPath.size());
  health_mount.origin = kProtocolName;
  health_mount.origin_protocol = LWSMPRO_CALLBACK;
  if (config_->static_dir) {
    health_mount.mount_next = &files_mount;
    files_mount.mountpoint = "/";
    files_mount.mountpoint_len = 1;
    files_mount.origin = static_origin.c_str();
    files_mount.def = config_->index_file.c_str();
    files_mount.origin_protocol = LWSMPRO_FILE;
  }

  // What every listener shares: its address family, HTTP/1.1 only (replies are written with
  // their headers in one go), our protocols, lws' own pings parked, and a bind failure is fatal.
  auto open_vhost = [&](const std::string& address, std::uint16_t port, const char* name,
                        std::uint64_t options, const lws_http_mount* mounts,
                        const lws_extension* extensions) {
    const bool ipv6 = address.find(':') != std::string::npos;
    lws_context_creation_info vinfo{};
    vinfo.port = port;
    vinfo.iface = address.c_str();
    vinfo.vhost_name = name;
    vinfo.protocols = protocols.data();
    vinfo.mounts = mounts;
    vinfo.extensions = extensions;
    vinfo.retry_and_idle_policy = &kFarAwayValidity;
    vinfo.alpn = "http/1.1";
    vinfo.options =
        options | LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND |
        (ipv6 ? (LWS_SERVER_OPTION_IPV6_V6ONLY_MODIFY | LWS_SERVER_OPTION_IPV6_V6ONLY_VALUE)
              : LWS_SERVER_OPTION_DISABLE_IPV6);
    lws_vhost* vhost = lws_create_vhost(context_, &vinfo);
    if (vhost == nullptr) {
      throw std::runtime_error("cannot listen on " + address + " port " + std::to_string(port) +
                               " for " + name + " (address in use, or not available on this host)");
    }
    return vhost;
  };
  auto url_host = [](const std::string& address) {
    return address.find(':') != std::string::npos ? "[" + address + "]" : address;
  };

  std::size_t index = 0;
  for (const auto& listener : config_->listeners) {
    const std::string& name =
        lws_tables_->vhost_names.emplace_back("listener-" + std::to_string(index++));
    lws_vhost* vhost = open_vhost(listener.address, listener.port, name.c_str(), 0, &health_mount,
                                  listener.permessage_deflate ? kDeflateExtensions : nullptr);
    listener_vhosts_.push_back(vhost);
    listener_of_vhost_[vhost] = &listener;
    WSB_LOG(kInfo) << "listening on ws://" << url_host(listener.address) << ":" << listener.port
                   << (listener.permessage_deflate ? " (permessage-deflate on)" : "");
  }
  if (config_->admin) {
    const AdminConfig& admin = *config_->admin;
    admin_vhost_ = open_vhost(admin.address, admin.port, "admin", 0, nullptr, nullptr);
    WSB_LOG(kInfo) << "admin listener on http://" << url_host(admin.address) << ":" << admin.port
                   << "/metrics"
                   << (admin.token                     ? " (bearer token required)"
                       : admin.allow_api_without_token ? " (no token: the API is open to anyone "
                                                         "who can reach it)"
                                                       : " (no token: the API is disabled)");
  }
  for (const auto& route : config_->routes) {
    WSB_LOG(kInfo) << "route " << route.path << " -> adapter " << route.adapter_name;
  }
  for (const auto& kind : config_->kinds) kind->start();

  schedule_timer(sweep_period_);
  ready_.store(true, std::memory_order_release);
  if (shutdown_requested_.load()) begin_shutdown();

  while (true) {
    if (lws_service(context_, 0) < 0) break;
    if (holds_answered_) release_held_upgrades();
    if (draining_ && (work_in_flight() == 0 || SteadyClock::now() >= drain_deadline_)) {
      finish_draining();
    }
    if (stopping_ && !draining_ &&
        (sessions_.empty() || SteadyClock::now() >= shutdown_deadline_)) {
      break;
    }
  }
  if (!sessions_.empty()) {
    WSB_LOG(kWarn) << "shutdown timeout: dropping " << sessions_.size() << " connection(s)";
  }

  inbox_->detach();
  config_->http_client->shutdown();  // answers what is still waiting, while adapters can hear it
  release_retired_configs(true);
  for (auto& [id, held] : held_) upgrade_hold::reply_and_close(held.fd, 503, "shutting down");
  held_.clear();
  destroying_ = true;
  lws_sul_cancel(&timer_->sul);
  lws_context_destroy(context_);
  context_ = nullptr;
  for (const auto& kind : config_->kinds) kind->stop();
  WSB_LOG(kInfo) << "stopped";
}

void Server::refuse_for_descriptors() {
  metrics::Registry::global()
      .counter("wsbridge_connections_refused_total", "WebSocket upgrades refused, by reason",
               {{"reason", "fd_limit"}})
      .inc();
  const auto now = SteadyClock::now();
  if (now - last_fd_warning_ >= std::chrono::seconds(5)) {
    last_fd_warning_ = now;
    WSB_LOG(kWarn) << "near the open-file limit (" << fd_limit_
                   << "): refusing new connections until some close (raise LimitNOFILE / "
                      "ulimit -n, or lower [limits] max_connections)";
  }
}

void Server::request_shutdown() {
  shutdown_requested_.store(true);
  InboxCommand command;
  command.type = InboxCommand::Type::kShutdown;
  inbox_->post(std::move(command));
}

void Server::begin_shutdown() {
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
    if (!session->reading_paused) lws_rx_flow_control(session->wsi, 0);
  }
  const std::size_t in_flight = work_in_flight();
  WSB_LOG(kInfo) << "shutting down: " << sessions_.size() << " connection(s), " << in_flight
                 << " request(s) in flight to upstreams";
  // Wake the loop so it re-checks its exit condition even when there is nothing to wait for.
  lws_cancel_service(context_);
}

std::size_t Server::work_in_flight() const {
  std::size_t n = 0;
  auto add = [&n](const ServerConfig& c) {
    n += c.http_client->in_flight();
    for (const auto& kind : c.kinds) n += kind->in_flight();
  };
  add(*config_);
  for (const auto& old : retired_configs_) add(*old);
  return n;
}

void Server::finish_draining() {
  draining_ = false;
  const std::size_t left = work_in_flight();
  if (left > 0) {
    WSB_LOG(kWarn) << "shutdown: " << left << " request(s) still in flight after the drain time";
  }
  WSB_LOG(kInfo) << "closing " << sessions_.size() << " connection(s) with 1001";
  for (auto& [id, session] : sessions_) {
    request_close(*session, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down", true);
  }
  lws_cancel_service(context_);
}

void Server::schedule_timer(std::chrono::milliseconds delay) {
  lws_sul_schedule(
      context_, 0, &timer_->sul,
      [](lws_sorted_usec_list_t* sul) { reinterpret_cast<Timer*>(sul)->server->on_timer(); },
      std::chrono::duration_cast<std::chrono::microseconds>(delay).count());
}

void Server::on_timer() {
  const auto now = SteadyClock::now();
  for (auto it = handshaking_.begin(); it != handshaking_.end();) {
    if (now - it->second < config_->limits.handshake_timeout) {
      ++it;
      continue;
    }
    WSB_LOG(kDebug) << "dropping a connection that did not finish its request in time";
    lws_set_timeout(it->first, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    it = handshaking_.erase(it);
  }
  for (auto& [id, s] : sessions_) {
    if (s->closing()) {
      // A decided close that lws has not completed: end it for sure.
      if (s->close_deadline && now >= *s->close_deadline) {
        WSB_LOG(kInfo) << "conn " << id << " did not finish closing in time: dropping it";
        s->close_deadline = now + kImmediateCloseGrace;  // (asked once per grace period)
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
      }
      continue;
    }
    s->outbox.release_memory();  // (no-op unless empty) idle connections hold no queue storage
    if (s->expires_at && std::chrono::system_clock::now() > *s->expires_at) {
      WSB_LOG(kInfo) << "conn " << id << " token expired: closing with 1008";
      s->expires_at.reset();
      request_close(*s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "token expired", false);
    } else if (s->mqtt_refusal && now - s->opened_at >= std::chrono::seconds(5)) {
      request_close(*s, LWS_CLOSE_STATUS_POLICY_VIOLATION, s->mqtt_refusal->substr(0, 120), false);
    } else if (!s->reading_paused && !stopping_ && now - s->last_rx >= s->route->idle_timeout) {
      // (A paused client cannot show it is alive: its PONGs wait unread behind its messages.)
      WSB_LOG(kDebug) << "conn " << id << " idle for " << format_seconds(now - s->last_rx);
      request_close(*s, LWS_CLOSE_STATUS_GOINGAWAY, "idle timeout", false);
      // A silent peer may never make the socket writable again: drop it for sure soon after.
      lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, 2);
    } else if (now - s->last_ping >= s->route->ping_interval) {
      s->last_ping = now;
      s->ping_due = true;
      lws_callback_on_writable(s->wsi);
    }
  }
  // Held upgrades whose adapter did not decide within the handshake timeout.
  for (auto it = held_.begin(); it != held_.end();) {
    if (it->second.verdict || now - it->second.since < config_->limits.handshake_timeout) {
      ++it;
      continue;
    }
    WSB_LOG(kWarn) << "admission check did not answer within the handshake timeout: 504";
    metrics::Registry::global()
        .counter("wsbridge_connections_refused_total", "WebSocket upgrades refused, by reason",
                 {{"reason", "admission_timeout"}})
        .inc();
    upgrade_hold::reply_and_close(it->second.fd, 504, "the admission check did not answer in time");
    it = held_.erase(it);
  }
  config_->http_client->sweep();
  for (const auto& old : retired_configs_) old->http_client->sweep();
  if (!retired_configs_.empty()) release_retired_configs(false);
  if (stopping_ && (now >= shutdown_deadline_ || (draining_ && now >= drain_deadline_))) {
    lws_cancel_service(context_);
  }
  schedule_timer(sweep_period_);
}

void Server::dispatch(InboxCommand&& command) {
  if (destroying_) return;
  if (command.type == InboxCommand::Type::kShutdown) {
    begin_shutdown();
    return;
  }
  if (command.type == InboxCommand::Type::kReload) {
    apply_reload(std::move(command.config));
    return;
  }
  auto it = sessions_.find(command.connection);
  if (it == sessions_.end()) return;  // already closed: a stale id is a no-op
  Session& s = *it->second;
  if (command.type == InboxCommand::Type::kSend) {
    enqueue(s, std::move(command.frame));
  } else if (command.type == InboxCommand::Type::kPauseReading ||
             command.type == InboxCommand::Type::kResumeReading) {
    const bool paused = command.type == InboxCommand::Type::kPauseReading;
    if (stopping_ || s.closing()) return;  // draining or closing: reading stays as it is
    if (paused != s.reading_paused) {
      s.reading_paused = paused;
      s.metrics->reading_paused->add(paused ? 1 : -1);
      lws_rx_flow_control(s.wsi, paused ? 0 : 1);
    }
  } else {
    request_close(s, command.close_code, std::move(command.close_reason), true);
  }
}

void Server::on_unmasked_frame(int fd) {
  // Inside lws' read: only note it, and close from the next loop iteration.
  unmasked_senders_.push_back(fd);
  lws_cancel_service(context_);
}

void Server::close_unmasked_senders() {
  if (unmasked_senders_.empty()) return;
  for (auto& [id, s] : sessions_) {
    const int fd = lws_get_socket_fd(s->wsi);
    if (std::find(unmasked_senders_.begin(), unmasked_senders_.end(), fd) ==
        unmasked_senders_.end()) {
      continue;
    }
    WSB_LOG(kInfo) << "conn " << id << " sent an unmasked frame: closing with 1002";
    // Answers to the valid frames before it still go out, then the close.
    request_close(*s, LWS_CLOSE_STATUS_PROTOCOL_ERR, "client frames must be masked", true);
    // It sends nothing more that lws could read: do not wait long for its close reply.
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, 2);
  }
  unmasked_senders_.clear();
}

void Server::drain_inbox() {
  close_unmasked_senders();
  std::vector<InboxCommand> batch;
  inbox_->drain_into(batch);
  for (auto& command : batch) dispatch(std::move(command));
}

void Server::enqueue(Session& s, Frame frame) {
  if (s.closing()) return;
  const RouteConfig& route = *s.route;
  auto over = [&] {
    return s.queued_bytes + frame.size() > route.max_queued_bytes ||
           s.outbox.size() + 1 > route.max_queued_messages;
  };
  if (over() && route.slow_consumer == RouteConfig::SlowConsumer::kDropOldest) {
    // Make room by discarding the oldest droppable frames; keep everything else in order.
    for (auto it = s.outbox.begin(); it != s.outbox.end() && over();) {
      if (it->is_droppable()) {
        s.queued_bytes -= it->size();
        it = s.outbox.erase(it);
        ++s.dropped;
        s.metrics->dropped->inc();
      } else {
        ++it;
      }
    }
    if (over() && frame.is_droppable()) {  // still no room: this one goes instead
      ++s.dropped;
      s.metrics->dropped->inc();
      return;
    }
  }
  if (over()) {
    WSB_LOG(kWarn) << "conn " << s.id << " is not reading: outbound queue over "
                   << route.max_queued_bytes << " bytes or " << route.max_queued_messages
                   << " messages, closing with 1013";
    s.outbox.clear();
    s.queued_bytes = 0;
    s.metrics->queue_drops->inc();
    request_close(s, static_cast<std::uint16_t>(CloseCode::kTryAgainLater), "slow consumer", false);
    return;
  }
  s.queued_bytes += frame.size();
  s.outbox.push_back(std::move(frame));
  lws_callback_on_writable(s.wsi);
}

void Server::request_close(Session& s, std::uint16_t code, std::string reason, bool after_queue) {
  if (s.close_sent) return;
  const auto deadline =
      SteadyClock::now() + (after_queue ? kQueuedCloseGrace : kImmediateCloseGrace);
  if (!s.close_deadline || deadline < *s.close_deadline) s.close_deadline = deadline;
  if (!after_queue) {
    s.outbox.clear();
    s.queued_bytes = 0;
  }
  if (!s.close_after_queue || !after_queue) {
    s.close_after_queue = PendingClose{code, std::move(reason)};
  }
  lws_callback_on_writable(s.wsi);
}

const auth::RouteAuth& Server::auth_policy(lws* wsi, const RouteConfig& route) const {
  if (!route.has_own_auth) {
    auto listener = listener_of_vhost_.find(lws_get_vhost(wsi));
    if (listener != listener_of_vhost_.end() && listener->second->auth)
      return *listener->second->auth;
  }
  return route.auth;
}

int Server::refuse_upgrade(lws* wsi, unsigned status, std::string_view code,
                           const std::string& reason, bool challenge) {
  WSB_LOG(kInfo) << "refused upgrade to " << header(wsi, WSI_TOKEN_GET_URI) << " from "
                 << peer_address(wsi) << ": " << status << " " << reason;
  metrics::Registry::global()
      .counter("wsbridge_connections_refused_total", "WebSocket upgrades refused, by reason",
               {{"reason", std::string(code)}})
      .inc();
  if (status == 401 || status == 403) {
    metrics::Registry::global()
        .counter("wsbridge_auth_failures_total",
                 "upgrades refused by authentication or "
                 "authorization, by reason",
                 {{"reason", std::string(code)}})
        .inc();
  }
  HeaderList extra;
  if (status == 426) extra.emplace_back("Sec-WebSocket-Version:", "13");
  if (challenge) extra.emplace_back("WWW-Authenticate:", "Bearer realm=\"wsbridge\"");
  write_http_reply(wsi, status, "text/plain", reason + "\n", extra);
  mask_guard::upgrade_refused(lws_get_socket_fd(wsi));  // lws reads on as HTTP
  return 1;
}

int Server::confirm_upgrade(lws* wsi) {
  const std::string uri = header(wsi, WSI_TOKEN_GET_URI);
  if (uri.empty())
    return refuse_upgrade(wsi, 400, "bad_request", "a WebSocket upgrade must be a GET request");
  if (auto problem = framing_problem(wsi, true)) {
    refuse_upgrade(wsi, problem->status, "bad_request", problem->reason);
    return -1;  // and close: what follows the head cannot be trusted (RFC 9112 6.3)
  }
  if (mask_guard::sent_sec_websocket_origin(lws_get_socket_fd(wsi))) {
    // lws files it under Origin, where it would pass for (or join) the real one.
    return refuse_upgrade(wsi, 400, "bad_request",
                          "Sec-WebSocket-Origin is not part of RFC 6455: send Origin");
  }
  const RouteConfig* route =
      lws_get_vhost(wsi) == admin_vhost_ ? nullptr : config_->find_route(uri);
  if (route == nullptr)
    return refuse_upgrade(wsi, 404, "not_found", "no WebSocket route at this path");
  if (header(wsi, WSI_TOKEN_VERSION) != "13") {
    return refuse_upgrade(wsi, 426, "bad_version", "only WebSocket version 13 is supported");
  }
  if (!valid_websocket_key(header(wsi, WSI_TOKEN_KEY))) {
    return refuse_upgrade(wsi, 400, "bad_request", "missing or malformed Sec-WebSocket-Key");
  }
  if (stopping_) return refuse_upgrade(wsi, 503, "shutting_down", "shutting down");

  const std::string ip = peer_address(wsi);
  // An upgrade coming back from its admission check: its checks passed on the first pass.
  if (auto a = admitted_.find(wsi); a != admitted_.end()) {
    Admitted admitted = std::move(a->second);
    admitted_.erase(a);
    const AdmissionResult& v = admitted.verdict;
    if (v.status < 200 || v.status > 299) {
      return refuse_upgrade(wsi, v.status, "admission",
                            v.reason.empty() ? "refused by the admission check" : v.reason);
    }
    if (v.claims.is_object()) {
      for (const auto& [key, value] : v.claims.items()) admitted.decision.claims[key] = value;
    }
    pending_auth_[wsi] =
        PendingUpgrade{std::move(admitted.decision), std::move(admitted.slot), std::nullopt};
    return 0;
  }
  // Taken here, the place travels with the upgrade (held, pending, session) until it is gone.
  ConnectionSlots::Refusal refusal = ConnectionSlots::Refusal::kNone;
  std::optional<ConnectionSlots::Slot> slot = slots_.take(
      ip, config_->limits.max_connections, config_->limits.max_connections_per_ip, refusal);
  if (refusal == ConnectionSlots::Refusal::kTotal) {
    return refuse_upgrade(wsi, 503, "max_connections", "too many connections");
  }
  if (refusal == ConnectionSlots::Refusal::kPerIp) {
    return refuse_upgrade(wsi, 503, "max_connections_per_ip",
                          "too many connections from this address");
  }

  // Subprotocols: lws will select the first offered one it knows (of any route); it must be one
  // this route accepts. "bearer.<token>" only carries a credential and is never selected.
  const auto offered = auth::split_header_list(header(wsi, WSI_TOKEN_PROTOCOL));
  std::optional<std::string> mqtt_refusal_reason;
  bool bearer_only = false;
  const auto bearer = mask_guard::take_bearer_token(lws_get_socket_fd(wsi), bearer_only);
  if (bearer && bearer_only) {
    return refuse_upgrade(wsi, 400, "subprotocol",
                          "Sec-WebSocket-Protocol carries only a bearer token: offer a "
                          "subprotocol of this route beside it");
  }
  if (!offered.empty()) {
    std::optional<std::string> selected;
    bool only_bearer = true;
    for (const auto& name : offered) {
      if (name.starts_with("bearer.")) continue;
      only_bearer = false;
      for (const auto& p : lws_tables_->protocol_names) {
        if (p == name) selected = name;
      }
      if (selected) break;
    }
    std::string accepted;
    for (const auto& p : route->subprotocols) accepted += (accepted.empty() ? "" : ", ") + p;
    if (only_bearer) {
      return refuse_upgrade(wsi, 400, "subprotocol",
                            "Sec-WebSocket-Protocol carries only a bearer token: offer a "
                            "subprotocol of this route beside it (" +
                                (accepted.empty() ? "it has none" : accepted) + ")");
    }
    const bool accepted_here =
        selected && std::find(route->subprotocols.begin(), route->subprotocols.end(), *selected) !=
                        route->subprotocols.end();
    if (!accepted_here && selected && mqtt_refusal::is_mqtt_subprotocol(*selected)) {
      // An MQTT client: admitted only to be told, in MQTT, why not (mqtt_refusal.hpp).
      mqtt_refusal_reason = "not MQTT: route " + route->path + " speaks the " +
                            route->adapter_name +
                            " adapter's messages (docs/PROTOCOL.md); no route here speaks MQTT";
    } else if (!accepted_here) {
      return refuse_upgrade(wsi, 400, "subprotocol",
                            "no supported subprotocol offered (this route accepts: " +
                                (accepted.empty() ? "none" : accepted) + ")");
    }
  }

  auth::HandshakeRequest request;
  if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0)
    request.origin = header(wsi, WSI_TOKEN_ORIGIN);
  auto listener = listener_of_vhost_.find(lws_get_vhost(wsi));
  if (listener != listener_of_vhost_.end() && !listener->second->origins.allows(request.origin)) {
    return refuse_upgrade(wsi, 403, "origin",
                          request.origin ? "origin " + *request.origin + " is not allowed"
                                         : "a request without Origin is not allowed");
  }
  if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) > 0) {
    request.authorization = header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
  }
  if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE) > 0) {
    request.cookie = header(wsi, WSI_TOKEN_HTTP_COOKIE);
  }
  request.subprotocols = offered;
  if (bearer) request.subprotocols.push_back("bearer." + *bearer);
  for (const std::string& arg : query_arguments(wsi)) {
    const auto eq = arg.find('=');
    request.query.emplace_back(arg.substr(0, eq),
                               eq == std::string::npos ? "" : arg.substr(eq + 1));
  }
  auth::AuthDecision decision = auth::authenticate(auth_policy(wsi, *route), config_->auth, request,
                                                   std::chrono::system_clock::now());
  if (!decision.allowed) {
    const std::string_view code = decision.challenge       ? "missing_credentials"
                                  : decision.status == 401 ? "invalid_credentials"
                                                           : "forbidden";
    return refuse_upgrade(wsi, decision.status, code, decision.reason, decision.challenge);
  }
  if (route->adapter->wants_admission() && !mqtt_refusal_reason) {
    return hold_upgrade(wsi, *route, std::move(decision), std::move(*slot));
  }
  pending_auth_[wsi] =
      PendingUpgrade{std::move(decision), std::move(slot), std::move(mqtt_refusal_reason)};
  return 0;
}

int Server::hold_upgrade(lws* wsi, const RouteConfig& route, auth::AuthDecision decision,
                         ConnectionSlots::Slot slot) {
  const int fd = lws_get_socket_fd(wsi);
  std::string bytes = mask_guard::take_request_bytes(fd);
  if (bytes.empty() || lws_is_ssl(wsi) != 0) {
    return refuse_upgrade(wsi, 500, "admission",
                          "this request cannot be held for its route's admission check");
  }
  AdmissionRequest request;
  request.identity.user = decision.user;
  request.identity.claims = decision.claims;
  request.identity.auth_method = decision.method;
  request.identity.acl = decision.acl;
  request.identity.remote_address = peer_address(wsi);
  request.identity.route_path = route.path;
  request.identity.request_uri = header(wsi, WSI_TOKEN_GET_URI);
  request.headers = upgrade_hold::parse_request_headers(bytes);
  const auto kept = upgrade_hold::detach_socket(fd);
  if (!kept) return refuse_upgrade(wsi, 503, "max_connections", "out of file descriptors");
  mask_guard::forget(fd);
  const std::uint64_t id = next_hold_id_++;
  HeldUpgrade& held = held_[id];
  held.fd = *kept;
  held.request_bytes = std::move(bytes);
  held.vhost = lws_get_vhost(wsi);
  held.since = SteadyClock::now();
  held.decision = std::move(decision);
  held.slot = std::move(slot);
  WSB_LOG(kDebug) << "holding an upgrade to " << route.path << " for its admission check";
  route.adapter->admit(std::move(request), [this, id](AdmissionResult verdict) {
    auto it = held_.find(id);
    if (it == held_.end()) return;  // timed out, or shutting down: already answered
    it->second.verdict = std::move(verdict);
    holds_answered_ = true;
    lws_cancel_service(context_);  // run() hands it back to lws, outside any lws callback
  });
  // lws closes its side of the connection now: the placeholder socket, not the client's.
  return -1;
}

void Server::release_held_upgrades() {
  holds_answered_ = false;
  std::vector<HeldUpgrade> answered;
  for (auto it = held_.begin(); it != held_.end();) {
    if (it->second.verdict) {
      answered.push_back(std::move(it->second));
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
  for (HeldUpgrade& held : answered) {
    if (stopping_) {
      upgrade_hold::reply_and_close(held.fd, 503, "shutting down");
      continue;
    }
    // The bytes go to lws from its buffer, not through recv(): let the guard see them too.
    mask_guard::watch_http(held.fd, this);
    std::string copy = held.request_bytes;
    mask_guard::after_recv(held.fd, copy.data(), static_cast<long>(copy.size()));
    adopting_fd_ = held.fd;
    adopting_ = Admitted{std::move(*held.verdict), std::move(held.decision), std::move(held.slot)};
    // lws parses the request again (inside this call when it can) and asks confirm_upgrade,
    // which answers from the verdict that NEW_CLIENT_INSTANTIATED bound to the new wsi. On
    // failure lws closes the socket itself.
    lws_adopt_socket_vhost_readbuf(held.vhost, held.fd, held.request_bytes.data(),
                                   held.request_bytes.size());
    adopting_fd_ = -1;
    adopting_.reset();
  }
}

bool Server::admin_authorized(lws* wsi) const {
  const auto& token = config_->admin->token;
  if (!token) return true;
  const std::string presented = header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
  return presented.size() == 7 + token->size() && presented.starts_with("Bearer ") &&
         CRYPTO_memcmp(presented.data() + 7, token->data(), token->size()) == 0;
}

int Server::serve_admin_api(lws* wsi, const AdminRequest& request) {
  AdminReply reply;
  if (request.too_large) {
    reply = AdminReply{413, "{\"error\":\"too_large\",\"message\":\"the body is over 1 MiB\"}\n"};
  } else {
    reply = handle_admin_api(request.method, request.target, request.body, *this);
  }
  WSB_LOG(kInfo) << "admin API " << request.method << " " << request.target << ": " << reply.status;
  write_http_reply(wsi, reply.status, "application/json", reply.body,
                   {{"Cache-Control:", "no-store"}});
  return lws_http_transaction_completed(wsi) != 0 ? -1 : 0;
}

std::vector<SessionInfo> Server::list_sessions() const {
  std::vector<SessionInfo> list;
  list.reserve(sessions_.size());
  for (const auto& [id, s] : sessions_) {
    const Identity& who = s->handle->identity();
    list.push_back(
        SessionInfo{id, who.user, s->route->path, who.remote_address,
                    std::chrono::duration<double>(s->opened_wall.time_since_epoch()).count(),
                    s->messages_in, s->messages_out, s->bytes_in, s->bytes_out});
  }
  std::sort(list.begin(), list.end(),
            [](const SessionInfo& a, const SessionInfo& b) { return a.id < b.id; });
  return list;
}

std::size_t Server::push(const PushTarget& target, const Frame& frame) {
  std::size_t n = 0;
  auto deliver = [&](Session& s) {
    if (s.closing()) return;
    enqueue(s, frame);
    ++n;
  };
  if (target.kind == PushTarget::Kind::kConnection) {
    if (auto it = sessions_.find(target.connection); it != sessions_.end()) deliver(*it->second);
    return n;
  }
  for (auto& [id, s] : sessions_) {
    if (target.kind == PushTarget::Kind::kUser ? s->handle->identity().user == target.name
                                               : s->route->path == target.name) {
      deliver(*s);
    }
  }
  return n;
}

bool Server::close_session(ConnectionId id, std::uint16_t code, const std::string& reason) {
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second->closing()) return false;
  WSB_LOG(kInfo) << "conn " << id << " closed by the admin API with " << code;
  request_close(*it->second, code, reason, true);
  return true;
}

int Server::serve_http(lws* wsi, std::string_view uri) {
  const bool admin = admin_vhost_ != nullptr && lws_get_vhost(wsi) == admin_vhost_;
  if (admin) {
    AdminRequestHead head;
    head.api = uri.starts_with(kAdminApiPrefix);
    const std::string length = header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    head.has_body = (!length.empty() && length != "0") ||
                    lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
    head.host = header_if_present(wsi, WSI_TOKEN_HOST);
    head.origin = header_if_present(wsi, WSI_TOKEN_ORIGIN);
    head.sec_fetch_site = custom_header(wsi, "sec-fetch-site:");
    head.content_type = header_if_present(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE);
    if (auto refusal = check_admin_request(*config_->admin, head)) {
      WSB_LOG(kInfo) << "admin request to " << uri << " refused: " << refusal->status << " "
                     << refusal->message;
      const nlohmann::json body = {{"error", refusal->code}, {"message", refusal->message}};
      write_http_reply(wsi, refusal->status, "application/json", body.dump() + "\n");
      return lws_http_transaction_completed(wsi) != 0 ? -1 : 0;
    }
  }
  if (admin && uri.starts_with(kAdminApiPrefix)) {
    if (!admin_authorized(wsi)) {
      write_http_reply(wsi, 401, "application/json",
                       "{\"error\":\"unauthorized\",\"message\":\"a valid admin bearer token is "
                       "required\"}\n",
                       {{"WWW-Authenticate:", "Bearer realm=\"wsbridge-admin\""}});
      return lws_http_transaction_completed(wsi) != 0 ? -1 : 0;
    }
    char* uri_ptr = nullptr;
    int uri_len = 0;
    const int method = lws_http_get_uri_and_method(wsi, &uri_ptr, &uri_len);
    static constexpr const char* kMethods[] = {"GET",   "POST",   "OPTIONS", "PUT",
                                               "PATCH", "DELETE", "CONNECT", "HEAD"};
    AdminRequest request;
    request.method = method >= 0 && method < 8 ? kMethods[method] : "UNKNOWN";
    request.target = std::string(uri);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) > 0) {
      std::string query;
      for (const std::string& arg : query_arguments(wsi)) {
        query += (query.empty() ? "" : "&") + arg;
      }
      request.target += "?" + query;
    }
    const std::string length = header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (!length.empty() && length != "0") {
      // The body comes in LWS_CALLBACK_HTTP_BODY; the reply goes out at its completion.
      admin_requests_[wsi] = std::move(request);
      return 0;
    }
    return serve_admin_api(wsi, request);
  }
  if (admin && uri == "/metrics") {
    if (!admin_authorized(wsi)) {
      write_http_reply(wsi, 401, "text/plain", "a valid admin bearer token is required\n",
                       {{"WWW-Authenticate:", "Bearer realm=\"wsbridge-admin\""}});
    } else {
      write_http_reply(wsi, HTTP_STATUS_OK, "text/plain; version=0.0.4",
                       metrics::Registry::global().render());
    }
    return lws_http_transaction_completed(wsi) != 0 ? -1 : 0;
  }
  if (uri == kHealthPath) {
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
      write_http_reply(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, "text/plain", "use GET\n",
                       {{"Allow:", "GET"}});
    } else {
      const double uptime = std::chrono::duration<double>(SteadyClock::now() - started_at_).count();
      const nlohmann::json body = {{"status", stopping_ ? "stopping" : "ok"},
                                   {"version", kVersion},
                                   {"uptime_seconds", uptime},
                                   {"connections", sessions_.size()}};
      write_http_reply(wsi, HTTP_STATUS_OK, "application/json", body.dump() + "\n",
                       {{"Cache-Control:", "no-store"}});
    }
  } else {
    write_http_reply(wsi, HTTP_STATUS_NOT_FOUND, "text/plain", "not found\n");
  }
  return lws_http_transaction_completed(wsi) != 0 ? -1 : 0;
}

int Server::on_established(lws* wsi, void** slot) {
  const std::string uri = header(wsi, WSI_TOKEN_GET_URI);
  const RouteConfig* route = config_->find_route(uri);
  if (route == nullptr) return -1;  // confirm_upgrade already refused this; never reached
  auto pending = pending_auth_.find(wsi);
  if (pending == pending_auth_.end()) return -1;  // not through confirm_upgrade: unchecked
  PendingUpgrade admitted = std::move(pending->second);
  pending_auth_.erase(pending);

  auto* s = new Session();
  *slot = s;
  s->id = next_id_++;
  s->wsi = wsi;
  s->config = config_;
  s->route = route;
  s->opened_at = s->last_rx = s->last_ping = SteadyClock::now();
  s->opened_wall = std::chrono::system_clock::now();
  // Batched raw writes only where lws has no per-frame work to do (permessage-deflate).
  {
    auto listener = listener_of_vhost_.find(lws_get_vhost(wsi));
    const bool deflate_possible =
        listener == listener_of_vhost_.end() || listener->second->permessage_deflate;
    s->coalesce_writes =
        !deflate_possible ||
        header(wsi, WSI_TOKEN_EXTENSIONS).find("permessage-deflate") == std::string::npos;
  }
  s->auth = &auth_policy(wsi, *route);

  s->mqtt_refusal = std::move(admitted.mqtt_refusal);
  Identity identity;
  auth::AuthDecision& d = admitted.decision;
  s->slot = std::move(admitted.slot);
  identity.user = std::move(d.user);
  identity.claims = std::move(d.claims);
  identity.auth_method = std::move(d.method);
  identity.acl = std::move(d.acl);
  s->expires_at = d.expires_at;
  identity.remote_address = peer_address(wsi);
  if (route->rate > 0) {
    s->rate_tokens = route->burst;
    s->rate_refilled_at = s->opened_at;
  }
  identity.route_path = route->path;
  identity.request_uri = uri;
  s->handle = std::make_shared<ConnectionHandle>(s->id, std::move(identity), inbox_);
  sessions_.emplace(s->id, s);

  s->metrics = route_metrics_.at(route).get();
  s->metrics->open->add(1);
  s->metrics->opened->inc();
  const Identity& who = s->handle->identity();
  log_structured(LogLevel::kInfo,
                 "conn " + std::to_string(s->id) + " open remote=" + who.remote_address +
                     " path=" + route->path + (who.user.empty() ? "" : " user=" + who.user),
                 {{"event", "open"},
                  {"conn", s->id},
                  {"remote", who.remote_address},
                  {"path", route->path},
                  {"user", who.user},
                  {"auth", who.auth_method}});
  if (!s->mqtt_refusal) route->adapter->on_open(s->handle);
  return 0;
}

int Server::on_receive(Session& s, const void* in, std::size_t len) {
  s.last_rx = SteadyClock::now();
  // Once a close is decided nothing more from this client reaches the adapter. lws may go on
  // calling RECEIVE after that: permessage-deflate drains its inflater chunk by chunk and ignores
  // what this callback returns, so closes are never left to a -1 returned from here.
  if (s.closing()) return 0;
  if (s.mqtt_refusal) return refuse_mqtt(s, in, len);
  const bool first = s.rx_buffer.empty();
  if (first) {
    s.rx_binary = lws_frame_is_binary(s.wsi) != 0;
    s.rx_utf8.reset();
    s.rx_buffer.assign(kFrameHeadroom, '\0');
    // Reserve for the whole first frame up front (its length is known), within the limit.
    const std::size_t expected = len + lws_remaining_packet_payload(s.wsi);
    s.rx_buffer.reserve(kFrameHeadroom + std::min(expected, s.route->max_message_bytes));
  }
  if (s.rx_buffer.size() - kFrameHeadroom + len > s.route->max_message_bytes) {
    const std::string reason =
        "message over " + std::to_string(s.route->max_message_bytes) + " bytes";
    WSB_LOG(kInfo) << "conn " << s.id << " " << reason << ": closing with 1009";
    s.rx_buffer.clear();
    s.rx_buffer.shrink_to_fit();
    request_close(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, reason, false);
    return 0;
  }
  s.rx_buffer.append(static_cast<const char*>(in), len);
  const bool final = lws_is_final_fragment(s.wsi) != 0;
  if (!s.rx_binary && (!s.rx_utf8.feed(static_cast<const unsigned char*>(in), len) ||
                       (final && !s.rx_utf8.complete()))) {
    WSB_LOG(kInfo) << "conn " << s.id << " sent text that is not UTF-8: closing with 1007";
    s.rx_buffer.clear();
    s.rx_buffer.shrink_to_fit();
    request_close(s, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "invalid UTF-8", false);
    return 0;
  }
  if (!final) return 0;

  Frame message =
      Frame::adopt(s.rx_binary ? FrameKind::kBinary : FrameKind::kText, std::move(s.rx_buffer));
  s.rx_buffer.clear();
  ++s.messages_in;
  s.bytes_in += message.size();
  s.metrics->messages_in->inc();
  s.metrics->bytes_in->inc(message.size());
  // (auth messages count against the rate limit like any other)
  if (s.route->rate > 0 && !within_rate(s)) {
    s.metrics->rate_limited->inc();
    s.route->adapter->on_rate_limited(s.handle, message);
    if (s.rate_strikes >= std::max(10.0, s.route->burst)) {
      WSB_LOG(kInfo) << "conn " << s.id << " keeps exceeding its rate limit: closing with 1008";
      request_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "rate limit exceeded", false);
    }
    return 0;
  }
  if (s.auth->jwt && message.is_text() && handle_auth_message(s, message)) return 0;
  s.route->adapter->on_message(s.handle, std::move(message));
  return 0;
}

// The client's first message should be its CONNECT: answer it with a refusing CONNACK, then
// close with the reason (which MQTT 3.1.1 clients cannot otherwise see).
int Server::refuse_mqtt(Session& s, const void* in, std::size_t len) {
  const std::string reason = *s.mqtt_refusal;
  WSB_LOG(kInfo) << "conn " << s.id << " is an MQTT client: " << reason;
  const std::string connack =
      mqtt_refusal::connack_for(std::string_view(static_cast<const char*>(in), len), reason);
  if (!connack.empty()) enqueue(s, Frame::binary(connack));
  request_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, reason.substr(0, 120), true);
  return 0;
}

bool Server::within_rate(Session& s) {
  const auto now = SteadyClock::now();
  const double elapsed = std::chrono::duration<double>(now - s.rate_refilled_at).count();
  s.rate_refilled_at = now;
  s.rate_tokens = std::min(s.route->burst, s.rate_tokens + elapsed * s.route->rate);
  if (s.rate_tokens >= 1) {
    s.rate_tokens -= 1;
    s.rate_strikes = 0;
    return true;
  }
  ++s.rate_strikes;
  return false;
}

// {"type":"auth","token":"...","id":...}: a fresh token for the same user, so the connection
// outlives the first token's expiry. Answered like the JSON protocols' requests.
bool Server::handle_auth_message(Session& s, const Frame& message) {
  const std::string_view text = message.payload();
  const auto start = text.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos || text[start] != '{' ||
      text.find("\"auth\"") == std::string_view::npos) {
    return false;
  }
  const auto doc = nlohmann::json::parse(text, nullptr, false);
  if (!doc.is_object() || doc.value("type", "") != "auth") return false;
  nlohmann::json reply = {{"type", "ack"}};
  if (doc.contains("id")) reply["id"] = doc["id"];
  auto token = doc.find("token");
  if (token == doc.end() || !token->is_string()) {
    reply["type"] = "error";
    reply["code"] = "bad_request";
    reply["message"] = "'token' must be a string";
  } else {
    // Judged by the configuration in force now, as a new handshake on this route would be: a
    // reload may have rotated keys, removed users or the route itself.
    const RouteConfig* current = config_->find_route(s.route->path);
    const Identity& who = s.handle->identity();
    auth::AuthDecision gone;
    gone.status = 403;
    gone.reason = "this route no longer exists";
    auto d = current == nullptr
                 ? std::move(gone)
                 : auth::reauthenticate(auth_policy(s.wsi, *current), who.user, who.claims,
                                        token->get_ref<const std::string&>(),
                                        std::chrono::system_clock::now());
    if (d.allowed) {
      s.expires_at = d.expires_at;
      WSB_LOG(kInfo) << "conn " << s.id << " refreshed its token";
    } else {
      WSB_LOG(kInfo) << "conn " << s.id << " token refresh refused: " << d.reason;
      reply["type"] = "error";
      reply["code"] = "forbidden";
      reply["message"] = d.reason;
    }
  }
  enqueue(s, Frame::text(reply.dump()));
  return true;
}

int Server::on_writeable(Session& s) {
  if (s.close_sent) return -1;
  s.in_flight.reset();  // the previous write has been taken over completely by now
  if (s.ping_due) {
    s.ping_due = false;
    // lws hides PONGs with an empty payload from the callback, so the ping carries one.
    unsigned char ping[LWS_PRE + 4] = {};
    std::memcpy(ping + LWS_PRE, "wsbp", 4);
    if (lws_write(s.wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 0) return -1;
    if (!s.outbox.empty() || s.close_after_queue) lws_callback_on_writable(s.wsi);
    return 0;
  }
  if (!s.outbox.empty() && s.coalesce_writes && s.outbox.size() >= 2) return write_batch(s);
  if (!s.outbox.empty()) {
    s.in_flight = std::move(s.outbox.front());
    s.outbox.pop_front();
    const Frame& frame = *s.in_flight;
    s.queued_bytes -= frame.size();
    const auto mode = frame.is_text() ? LWS_WRITE_TEXT : LWS_WRITE_BINARY;
    ++s.messages_out;
    s.bytes_out += frame.size();
    s.metrics->messages_out->inc();
    s.metrics->bytes_out->inc(frame.size());
    if (lws_write(s.wsi, frame.payload_with_headroom(), frame.size(), mode) < 0) {
      return -1;
    }
    after_write(s);
    return 0;
  }
  if (s.close_after_queue) {
    const PendingClose& c = *s.close_after_queue;
    return close_now(s, c.code, c.reason);
  }
  return 0;
}

// Several queued frames in one write: the kernel's send path costs about the same for 40 bytes
// as for 4 KiB, so one system call per frame caps a server far below what batching reaches. The
// frames are complete server frames (unmasked, FIN), so lws sends them as raw bytes; only for
// connections without permessage-deflate (lws must compress those frame by frame).
int Server::write_batch(Session& s) {
  constexpr std::size_t kMaxBatchBytes = 64 * 1024;
  constexpr std::size_t kMaxBatchFrames = 128;
  std::string& out = batch_buffer_;
  out.assign(LWS_PRE, '\0');
  std::size_t frames = 0;
  std::size_t bytes = 0;
  while (!s.outbox.empty() && frames < kMaxBatchFrames) {
    const Frame& f = s.outbox.front();
    const std::size_t size = f.size();
    if (frames > 0 && out.size() - LWS_PRE + size + 10 > kMaxBatchBytes) break;
    // RFC 6455 5.2: FIN + opcode, then the payload length in 7, 7+16 or 7+64 bits; no mask.
    out.push_back(static_cast<char>(0x80 | (f.is_text() ? 0x1 : 0x2)));
    if (size < 126) {
      out.push_back(static_cast<char>(size));
    } else if (size <= 0xffff) {
      out.push_back(static_cast<char>(126));
      out.push_back(static_cast<char>(size >> 8));
      out.push_back(static_cast<char>(size & 0xff));
    } else {
      out.push_back(static_cast<char>(127));
      for (int shift = 56; shift >= 0; shift -= 8) {
        out.push_back(static_cast<char>((static_cast<std::uint64_t>(size) >> shift) & 0xff));
      }
    }
    out.append(f.payload());
    s.queued_bytes -= size;
    bytes += size;
    ++frames;
    s.outbox.pop_front();
  }
  s.in_flight.reset();
  s.messages_out += frames;
  s.bytes_out += bytes;
  s.metrics->messages_out->inc(frames);
  s.metrics->bytes_out->inc(bytes);
  // lws copies what the kernel does not take and sends it before the next WRITEABLE.
  if (lws_write(s.wsi, reinterpret_cast<unsigned char*>(out.data()) + LWS_PRE, out.size() - LWS_PRE,
                LWS_WRITE_RAW) < 0) {
    return -1;
  }
  after_write(s);
  return 0;
}

void Server::after_write(Session& s) {
  if (!s.outbox.empty() || s.close_after_queue) lws_callback_on_writable(s.wsi);
  if (s.outbox.empty() && s.dropped > 0) {
    // Caught up: tell the adapter how much this client missed (it may queue a notice).
    const std::uint64_t dropped = std::exchange(s.dropped, 0);
    s.route->adapter->on_dropped(s.handle, dropped);
  }
}

void Server::on_peer_close(Session& s, const void* in, std::size_t len) {
  const auto* bytes = static_cast<const unsigned char*>(in);
  if (s.close_sent) return;  // the peer is answering our close
  s.close_info.by_peer = true;
  s.close_info.code = len >= 2 ? static_cast<std::uint16_t>(bytes[0] << 8 | bytes[1]) : 1005;
  s.close_info.reason =
      len > 2 ? std::string(reinterpret_cast<const char*>(bytes) + 2, len - 2) : "";
}

void Server::on_closed(Session* s) {
  if (s == nullptr) return;
  s->handle->mark_closed();
  sessions_.erase(s->id);
  s->metrics->open->add(-1);
  if (s->reading_paused) s->metrics->reading_paused->add(-1);
  // The access-log line of the connection.
  const auto lifetime = SteadyClock::now() - s->opened_at;
  const Identity& who = s->handle->identity();
  log_structured(LogLevel::kInfo,
                 "conn " + std::to_string(s->id) + " close remote=" + who.remote_address +
                     " path=" + s->route->path + " code=" + std::to_string(s->close_info.code) +
                     " by=" + (s->close_info.by_peer ? "peer" : "server") +
                     " duration=" + format_seconds(lifetime),
                 {{"event", "close"},
                  {"conn", s->id},
                  {"remote", who.remote_address},
                  {"path", s->route->path},
                  {"user", who.user},
                  {"code", s->close_info.code},
                  {"by", s->close_info.by_peer ? "peer" : "server"},
                  {"duration_s", std::chrono::duration<double>(lifetime).count()},
                  {"messages_in", s->messages_in},
                  {"messages_out", s->messages_out}});
  try {
    if (!s->mqtt_refusal) s->route->adapter->on_close(s->handle, s->close_info);
  } catch (const std::exception& e) {
    WSB_LOG(kError) << "adapter " << s->route->adapter_name << " on_close threw: " << e.what();
  }
  delete s;
}

int Server::lws_callback(lws* wsi, int reason_int, void* user, void* in, std::size_t len) {
  const auto reason = static_cast<lws_callback_reasons>(reason_int);
  const lws_protocols* protocol = lws_get_protocol(wsi);
  auto* self = protocol != nullptr ? static_cast<Server*>(protocol->user) : nullptr;
  if (self == nullptr) return lws_callback_http_dummy(wsi, reason, user, in, len);
  // `user` is the per-connection slot for connection callbacks only (FILTER_NETWORK_CONNECTION
  // passes other data in it), so it is read in those cases alone.
  auto** slot = static_cast<Session**>(user);
  auto session_of = [slot]() -> Session* { return slot != nullptr ? *slot : nullptr; };
  Session* session = nullptr;

  try {
    switch (reason) {
      case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        self->drain_inbox();
        return 0;
      case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: {
        if (self->stopping_) return -1;  // shutting down: accept no more
        const int fd = static_cast<int>(reinterpret_cast<lws_intptr_t>(in));
        // Descriptors are allocated lowest first: a high number means few are left.
        if (self->fd_limit_ > 0 && fd >= self->fd_limit_ - kSpareDescriptors) {
          self->refuse_for_descriptors();
          return -1;
        }
        mask_guard::watch_http(fd, self);
        return 0;
      }
      case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        // Slow or silent clients must finish their request within the handshake timeout (lws
        // replaces any timeout set here with its own, so our timer enforces it).
        self->handshaking_[wsi] = SteadyClock::now();
        if (self->adopting_ && lws_get_socket_fd(wsi) == self->adopting_fd_) {
          // A held upgrade handed back (release_held_upgrades): its verdict goes with this wsi.
          self->admitted_[wsi] = std::move(*self->adopting_);
          self->adopting_.reset();
        }
        return 0;
      case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
        // A complete request head (every HTTP request but upgrades, static files included).
        self->handshaking_.erase(wsi);
        if (auto problem = framing_problem(wsi, false)) {
          WSB_LOG(kInfo) << "refused a request from " << peer_address(wsi) << ": "
                         << problem->status << " " << problem->reason;
          write_http_reply(wsi, problem->status, "text/plain", problem->reason + "\n",
                           {{"Connection:", "close"}});
          return -1;  // and close: what follows the head cannot be trusted (RFC 9112 6.3)
        }
        return 0;
      case LWS_CALLBACK_HTTP_BIND_PROTOCOL:
        // Bound at the start of every HTTP transaction, and again when one completes on a
        // keep-alive connection: the next request must come within the handshake timeout too.
        self->handshaking_[wsi] = SteadyClock::now();
        return lws_callback_http_dummy(wsi, reason, user, in, len);
      case LWS_CALLBACK_HTTP_BODY: {
        auto it = self->admin_requests_.find(wsi);
        if (it == self->admin_requests_.end()) return 0;
        AdminRequest& r = it->second;
        if (r.body.size() + len > kMaxAdminBodyBytes) {
          r.too_large = true;
          r.body.clear();
        } else if (!r.too_large) {
          r.body.append(static_cast<const char*>(in), len);
        }
        return 0;
      }
      case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
        auto it = self->admin_requests_.find(wsi);
        if (it == self->admin_requests_.end())
          return lws_callback_http_dummy(wsi, reason, user, in, len);
        AdminRequest request = std::move(it->second);
        self->admin_requests_.erase(it);
        return self->serve_admin_api(wsi, request);
      }
      case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        if (std::strcmp(static_cast<const char*>(in), "websocket") != 0) return -1;
        return self->confirm_upgrade(wsi);
      case LWS_CALLBACK_HTTP: {
        self->handshaking_.erase(wsi);  // the request arrived in time
        const std::string uri = header(wsi, WSI_TOKEN_GET_URI);
        return self->serve_http(wsi, uri.empty() ? std::string_view(static_cast<const char*>(in))
                                                 : std::string_view(uri));
      }
      case LWS_CALLBACK_ESTABLISHED:
        self->handshaking_.erase(wsi);  // upgraded in time
        mask_guard::start_websocket(lws_get_socket_fd(wsi));
        return self->on_established(wsi, reinterpret_cast<void**>(slot));
      case LWS_CALLBACK_RECEIVE:
        session = session_of();
        return session != nullptr ? self->on_receive(*session, in, len) : -1;
      case LWS_CALLBACK_RECEIVE_PONG:
        session = session_of();
        if (session != nullptr) session->last_rx = SteadyClock::now();
        return 0;
      case LWS_CALLBACK_SERVER_WRITEABLE:
        session = session_of();
        return session != nullptr ? self->on_writeable(*session) : 0;
      case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        session = session_of();
        if (session != nullptr) self->on_peer_close(*session, in, len);
        return 0;
      case LWS_CALLBACK_CLOSED:
        mask_guard::forget(lws_get_socket_fd(wsi));
        self->on_closed(session_of());
        if (slot != nullptr) *slot = nullptr;
        return 0;
      case LWS_CALLBACK_CLOSED_HTTP:
      case LWS_CALLBACK_WSI_DESTROY:
        self->pending_auth_.erase(wsi);
        self->handshaking_.erase(wsi);
        self->admitted_.erase(wsi);
        self->admin_requests_.erase(wsi);
        mask_guard::forget(lws_get_socket_fd(wsi));
        return lws_callback_http_dummy(wsi, reason, user, in, len);
      default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
  } catch (const std::exception& e) {
    // Never let an exception unwind through C code: close this connection as an internal error.
    WSB_LOG(kError) << "error handling lws event " << reason_int << ": " << e.what();
    if (session != nullptr && !session->close_sent) {
      if (reason == LWS_CALLBACK_SERVER_WRITEABLE) {
        return close_now(*session, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "internal error");
      }
      // Elsewhere (RECEIVE inside a permessage-deflate drain) lws may ignore a -1: close from
      // the next WRITEABLE, backed by the close deadline.
      self->request_close(*session, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "internal error", false);
      return 0;
    }
    return -1;
  }
}

}  // namespace wsbridge
