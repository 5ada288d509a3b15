// A ClientConnection after the backend's 101: a WebSocket tunnel, relayed through lws' streams or
// (plain sockets on both sides) handed to a DirectTunnel, and its access-log line when it ends.
#include <libwebsockets.h>

#include <algorithm>
#include <cstdio>

#include "reverse_proxy/client_connection.hpp"
#include "reverse_proxy/forward_headers.hpp"
#include "reverse_proxy/proxy_metrics.hpp"
#include "stream/lws_stream_client.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::reverse_proxy {

// 101 from the backend: its head to the browser, then bytes both ways until either side ends.
void ClientConnection::start_tunnel() {
  phase_ = Phase::kTunnel;
  takeover_.http_slot.reset();  // (a WebSocket now: tunnel_slot_ counts it)
  backend_->pool().let_go(*backend_);
  count_response(101);
  tunnel_path_ = route_->path;
  proxy_metrics::tunnel_opened(tunnel_path_);
  tunnel_opened_at_ = std::chrono::steady_clock::now();
  tunnel_logged_open_ = true;
  log_structured(LogLevel::kInfo,
                 "proxy: tunnel open remote=" + client_address_ + " path=" +
                     log_field_value(request_.path()) + " backend=" + route_->backend_url +
                     (identity_.user.empty() ? "" : " user=" + log_field_value(identity_.user)),
                 {{"event", "tunnel_open"},
                  {"remote", client_address_},
                  {"path", request_.path()},
                  {"proxy", route_->path},
                  {"backend", route_->backend_url},
                  {"user", identity_.user}});
  client_->write(client_response_head(*response_, true, listener_hsts()));
  sent_anything_ = true;
  if (!response_in_.empty()) {  // frames in the same read as the 101: counted as relayed
    tunnel_bytes_down_ += response_in_.size();
    client_->write(response_in_);
    response_in_.clear();
  }
  if (client_paused_) {
    client_->pause_reading(false);
    client_paused_ = false;
  }
  if (!in_.empty()) {
    std::string early = std::move(in_);
    in_.clear();
    tunnel_bytes_up_ += early.size();
    if (!backend_->stream().write(early)) {
      client_->pause_reading(true);
      client_paused_ = true;
    }
  }
  if (go_direct()) return;
  arm_timer();
}

bool ClientConnection::go_direct() {
  LwsStreamClient& streams = LwsStreamClient::instance();
  if (tls_ || client_paused_ || !client_ || !backend_ || !streams.releasable_plain(*client_) ||
      !streams.releasable_plain(backend_->stream())) {
    return false;
  }
  bool busy = false;
  auto client = streams.release(*client_, busy);
  if (!client) return false;  // (descriptors ran out: lws keeps it)
  auto backend = streams.release(backend_->stream(), busy);
  if (!backend) {
    // The client's socket left lws already: it goes back as a stream of its own.
    client_ = streams.adopt(client->fd, nullptr, *this, "the client " + takeover_.peer);
    if (!client_) close_now();
    return !client_;
  }
  client_.reset();
  drop_backend();
  DirectTunnel::Owner& owner = *this;
  std::optional<std::chrono::milliseconds> lifetime;
  if (token_expires_) {
    lifetime = std::max(std::chrono::milliseconds(0),
                        std::chrono::duration_cast<std::chrono::milliseconds>(
                            *token_expires_ - std::chrono::steady_clock::now()));
  }
  direct_ = std::make_unique<DirectTunnel>(client->fd, backend->fd, route_->websocket_idle_timeout,
                                           lifetime, owner);
  if (direct_->start()) return true;
  tunnel_ended("wsbridge", "no event loop on this thread");
  close_now();
  return true;
}

void ClientConnection::direct_tunnel_ended(std::string_view by, std::string_view why) {
  tunnel_ended(by, why);
  phase_ = Phase::kClosing;
  close_now();
  // (retire's timer is an lws one: lws arms it only when it runs, and nothing of lws did here)
  lws_cancel_service(service_.host().loop());
}

void ClientConnection::tunnel_ended(std::string_view by, std::string_view why) {
  if (!tunnel_logged_open_) return;
  tunnel_logged_open_ = false;
  const std::uint64_t up = tunnel_bytes_up_ + (direct_ ? direct_->bytes_up() : 0);
  const std::uint64_t down = tunnel_bytes_down_ + (direct_ ? direct_->bytes_down() : 0);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - tunnel_opened_at_).count();
  char duration[32];
  std::snprintf(duration, sizeof duration, "%.3fs", seconds);
  log_structured(LogLevel::kInfo,
                 "proxy: tunnel close remote=" + client_address_ +
                     " path=" + std::string(request_.path()) + " by=" + std::string(by) + " (" +
                     std::string(why) + ") duration=" + duration +
                     " bytes_up=" + std::to_string(up) + " bytes_down=" + std::to_string(down),
                 {{"event", "tunnel_close"},
                  {"remote", client_address_},
                  {"path", request_.path()},
                  {"proxy", route_->path},
                  {"by", by},
                  {"reason", why},
                  {"duration_s", seconds},
                  {"bytes_up", up},
                  {"bytes_down", down}});
}

}  // namespace wsbridge::reverse_proxy
