// The browser's side of a relayed connection: request heads, the checks before a request goes
// anywhere (the path, the credentials, the limits), refusals, timers, and the end.
#include "reverse_proxy/client_connection.hpp"

#include <array>
#include <unordered_map>

#include "reverse_proxy/forward_headers.hpp"
#include "reverse_proxy/proxy_metrics.hpp"
#include "reverse_proxy/request_auth.hpp"
#include "reverse_proxy/request_path.hpp"
#include "reverse_proxy/websocket_handshake.hpp"
#include "stream/lws_stream_client.hpp"
#include "tls/client_identity.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::reverse_proxy {

ClientConnection::ClientConnection(ProxyService& service, Takeover takeover)
    : service_(service), takeover_(std::move(takeover)) {}

ClientConnection::~ClientConnection() {
  if (waiting_in_ != nullptr) waiting_in_->cancel_wait(*this);
  backend_.reset();
  client_.reset();
  tunnel_ended("wsbridge", "connection closed");  // (when no end above said who ended it)
  if (!tunnel_path_.empty()) proxy_metrics::tunnel_closed(tunnel_path_);
}

bool ClientConnection::start() {
  in_ = std::move(takeover_.head);
  SSL* ssl = std::exchange(takeover_.ssl, nullptr);
  tls_ = ssl != nullptr;
  client_ =
      LwsStreamClient::instance().adopt(takeover_.fd, ssl, *this, "the client " + takeover_.peer);
  if (!client_) return false;
  if (tls_) client_cert_ = tls::verified_client_certificate(ssl);
  phase_since_ = std::chrono::steady_clock::now();
  process_input();
  return true;
}

void ClientConnection::abort() {
  if (phase_ == Phase::kTunnel) tunnel_ended("wsbridge", "shutting down");
  phase_ = Phase::kClosing;
  close_now();
}

void ClientConnection::on_data(std::string_view bytes) {
  touch();
  switch (phase_) {
    case Phase::kHead:
      in_.append(bytes);
      return process_input();
    case Phase::kWaiting:
    case Phase::kExchange:
      in_.append(bytes);
      return pump_request_body();
    case Phase::kTunnel:
      tunnel_bytes_up_ += bytes.size();
      if (backend_ && !backend_->stream().write(bytes)) {
        client_->pause_reading(true);
        client_paused_ = true;
      }
      return;
    case Phase::kHandingBack:
      in_.append(bytes);  // (read before the pause took effect) it goes to lws with the rest
      return;
    case Phase::kLingering:  // the rest of a body nobody reads
    case Phase::kClosing:
      return;
  }
}

void ClientConnection::on_drained() {
  touch();
  if (phase_ == Phase::kHandingBack) return hand_back();
  if ((phase_ == Phase::kExchange || phase_ == Phase::kTunnel) && backend_) {
    backend_->stream().pause_reading(false);
  }
}

void ClientConnection::on_closed(std::string_view reason) {
  WSB_LOG(kDebug) << "proxy: " << takeover_.peer << " gone (" << reason << ")";
  client_.reset();
  if (phase_ == Phase::kTunnel) tunnel_ended("client", reason);
  if (phase_ == Phase::kTunnel && backend_) {
    backend_->stream().close();  // (flushes what the browser sent last)
  }
  drop_backend();
  phase_ = Phase::kClosing;
  service_.retire(this);
}

// Reads the next request head from in_ and starts it, or hands the connection to lws.
void ClientConnection::process_input() {
  if (phase_ != Phase::kHead) return;
  // The previous exchange on this connection is over: a refusal of this request is written.
  // (Left set from the previous answer, it was not, and the browser saw a bare close.)
  response_.reset();
  sent_anything_ = false;
  const std::size_t end = find_head_end(in_);
  if (end == std::string::npos) {
    if (in_.size() > kMaxHeadBytes) {
      request_ = RequestHead{};
      request_done_ = false;
      return refuse(431, "the request head is over " + std::to_string(kMaxHeadBytes) + " bytes");
    }
    if (has_bare_line_feed(in_)) {  // (find_head_end would never end such a head)
      request_ = RequestHead{};
      request_done_ = false;
      return refuse(400, "a request head line that ends in LF alone (RFC 9112 2.2: CRLF)");
    }
    arm_timer();
    return;
  }
  request_ = RequestHead{};
  request_done_ = false;  // (until the head says there is no body: a refusal reads on a while)
  auto parsed = parse_request_head(std::string_view(in_).substr(0, end));
  if (auto* error = std::get_if<HeadError>(&parsed)) return refuse(error->status, error->reason);
  start_request(std::move(std::get<RequestHead>(parsed)), end);
}

void ClientConnection::start_request(RequestHead head, std::size_t head_size) {
  config_ = service_.host().current_config();
  route_ = config_->proxy_for(head.path(), head.websocket_upgrade);
  if (route_ == nullptr) return hand_back();
  in_.erase(0, head_size);
  request_ = std::move(head);
  request_body_ = BodyFollower(request_.body, request_.content_length);
  request_body_.guard_request(route_->max_body_bytes);
  request_lines_ = LineHold{};
  request_done_ = request_body_.done();
  if (auto problem = unsafe_path(request_.path())) return refuse(400, *problem);
  if (auto bad = request_.websocket_upgrade ? websocket_request_problem(request_) : std::nullopt) {
    return refuse(bad->status, bad->reason,
                  bad->status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "");
  }
  const std::size_t listener = takeover_.listener;
  const ListenerConfig* listener_config =
      listener < config_->listeners.size() ? &config_->listeners[listener] : nullptr;
  // The client as the listener's trusted proxies say (X-Forwarded-For), as for WebSockets.
  // (Every line of it, as lws joins them for WebSockets: a balancer may add its own line.)
  const std::string joined_for = joined_header(request_.headers, "X-Forwarded-For");
  const std::string* forwarded_for = joined_for.empty() ? nullptr : &joined_for;
  const bool peer_trusted = config_->trusted_proxies.trusts(takeover_.peer);
  client_address_ = config_->trusted_proxies.empty() || forwarded_for == nullptr
                        ? takeover_.peer
                        : config_->trusted_proxies.client_of(takeover_.peer, *forwarded_for);

  auth::HandshakeRequest credentials = handshake_request_of(request_, peer_trusted);
  credentials.client_cert = client_cert_;
  credentials.tls = tls_;
  // (The upgrade the connection was taken over with; any later request is the proxy's own read.)
  if (auto bearer = std::exchange(takeover_.bearer, std::nullopt);
      bearer && request_.websocket_upgrade) {
    credentials.subprotocols.push_back("bearer." + *bearer);
  }
  identity_ = Identity{};
  token_expires_.reset();
  if (route_->has_auth || request_.websocket_upgrade) {
    // Upgrades always pass the listener's Origin allowlist, as every WebSocket does.
    const auth::RouteAuth open_route;
    const auth::AuthDecision decision = auth::authenticate(
        route_->has_auth ? route_->auth : open_route, config_->auth, credentials,
        std::chrono::system_clock::now(),
        request_.websocket_upgrade && listener_config != nullptr ? listener_config->origins
                                                                 : auth::OriginPolicy{});
    if (!decision.allowed) {
      proxy_metrics::refused(route_->path, decision.code);
      return refuse(decision.status, decision.reason,
                    decision.challenge ? "WWW-Authenticate: Bearer realm=\"wsbridge\"\r\n" : "");
    }
    identity_.user = decision.user;
    identity_.claims = decision.claims;
    identity_.auth_method = decision.method;
    if (decision.expires_at) {
      const auto now = std::chrono::system_clock::now();
      token_expires_ =
          std::chrono::steady_clock::now() +
          std::max(std::chrono::system_clock::duration::zero(), *decision.expires_at - now);
    }
  }
  identity_.remote_address = client_address_;
  identity_.route_path = route_->path;
  identity_.request_uri = std::string(request_.path());

  if (request_.body == BodyFraming::kLength && request_.content_length > route_->max_body_bytes) {
    return refuse(413,
                  "the request body is over " + std::to_string(route_->max_body_bytes) + " bytes");
  }
  if (request_.websocket_upgrade) {
    if (service_.host().refusing_new_connections()) {
      return refuse(503, "draining before a restart", "Retry-After: 1\r\n");
    }
    std::string why;
    tunnel_slot_ = service_.host().take_tunnel_slot(client_address_, why);
    if (!tunnel_slot_) return refuse(503, why);
    strip_bearer_offers(request_);
  }
  ForwardContext context;
  context.peer_address = takeover_.peer;
  context.client_address = client_address_;
  context.peer_trusted = peer_trusted;
  context.tls = tls_;
  context.identity = &identity_;
  backend_head_ = backend_request_head(request_, *route_, context);
  request_dropped_ = false;
  retried_ = false;
  interim_responses_ = 0;
  response_in_.clear();
  response_.reset();
  sent_anything_ = false;
  // (An HTTP/1.0 browser keeps its connection only when told "keep-alive", which the proxy does
  // not say: it closes after the response.)
  keep_alive_ = request_.keep_alive && request_.minor_version >= 1;
  acquire_backend();
}

void ClientConnection::refuse(unsigned status, std::string_view reason,
                              std::string_view extra_headers) {
  WSB_LOG(kInfo) << "proxy: refused " << request_.method << " " << request_.path() << " from "
                 << (client_address_.empty() ? takeover_.peer : client_address_) << ": " << status
                 << " " << reason;
  drop_backend();
  tunnel_slot_.reset();
  if (client_ && !sent_anything_) {
    const std::string body = std::string(reason) + "\n";
    std::string reply =
        "HTTP/1.1 " + std::to_string(status) + " " + std::string(standard_reason(status)) +
        "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\nConnection: close\r\n";
    reply.append(extra_headers);
    if (const std::string_view hsts = listener_hsts(); !hsts.empty()) {
      reply.append("Strict-Transport-Security: ").append(hsts).append("\r\n");
    }
    reply += "\r\n";
    if (request_.method != "HEAD") reply += body;
    client_->write(reply);
    count_response(status);
  }
  // What follows a refused head cannot be trusted to be where a next request starts.
  finish(false);
}

std::string_view ClientConnection::listener_hsts() const {
  const auto& listeners = service_.host().current_config()->listeners;
  if (takeover_.listener >= listeners.size() || !listeners[takeover_.listener].tls) return {};
  return listeners[takeover_.listener].tls->settings().hsts;
}

// The exchange is over: on to the next request, or (keep_open false) close once flushed.
void ClientConnection::finish(bool keep_open) {
  drop_backend();
  tunnel_slot_.reset();
  if (!client_) return service_.retire(this);
  if (!keep_open) {
    if (!request_done_) return linger();
    phase_ = Phase::kClosing;
    client_->close();  // sends what is buffered first
    client_.reset();
    return service_.retire(this);
  }
  phase_ = Phase::kHead;
  phase_since_ = std::chrono::steady_clock::now();
  route_ = nullptr;
  config_.reset();
  if (client_paused_) {
    client_->pause_reading(false);
    client_paused_ = false;
  }
  touch();
  process_input();
}

void ClientConnection::linger() {
  phase_ = Phase::kLingering;
  phase_since_ = std::chrono::steady_clock::now();
  touch();
  in_.clear();
  in_.shrink_to_fit();
  if (client_paused_) {
    client_->pause_reading(false);
    client_paused_ = false;
  }
  arm_timer();
}

void ClientConnection::close_now() {
  drop_backend();
  client_.reset();
  service_.retire(this);
}

// One timer per connection; what it guards depends on the phase (docs/PROXY.md, timeouts).
void ClientConnection::arm_timer() {
  if (!client_) return;
  using namespace std::chrono;
  milliseconds delay{0};
  const auto now = steady_clock::now();
  auto until = [&](steady_clock::time_point deadline) {
    return std::max(milliseconds(1), duration_cast<milliseconds>(deadline - now));
  };
  switch (phase_) {
    case Phase::kHead:
      // (Between requests and for a whole head: [limits] handshake_timeout, as on lws' paths.
      // From the previous answer, not from the last byte: a head dripped a byte at a time kept
      // an idle timer from ever running out.)
      delay = until(phase_since_ + config_timeout());
      break;
    case Phase::kWaiting:
      delay = until(sent_at_ + route_->response_timeout);
      break;
    case Phase::kExchange:
      delay = awaiting_response() ? until(sent_at_ + route_->response_timeout)
                                  : until(last_activity_ + route_->idle_timeout);
      break;
    case Phase::kTunnel:
      if (route_->websocket_idle_timeout.count() > 0) {
        delay = until(last_activity_ + route_->websocket_idle_timeout);
      }
      if (token_expires_) {
        delay =
            delay.count() > 0 ? std::min(delay, until(*token_expires_)) : until(*token_expires_);
      }
      break;
    case Phase::kHandingBack:
      delay = milliseconds(5);
      break;
    case Phase::kLingering:
      delay = std::min(until(last_activity_ + kLingerQuiet), until(phase_since_ + kLingerMax));
      break;
    case Phase::kClosing:
      break;
  }
  client_->set_timer(delay);
}

void ClientConnection::on_timer() {
  using namespace std::chrono;
  const auto now = steady_clock::now();
  switch (phase_) {
    case Phase::kHead:
      if (now - phase_since_ >= config_timeout()) {
        return close_now();  // an idle keep-alive connection, or a head that never ended
      }
      break;
    case Phase::kWaiting:
      if (now - sent_at_ >= route_->response_timeout) {
        return backend_failed(503, "busy", "no connection to the backend became free in time");
      }
      break;
    case Phase::kExchange:
      if (awaiting_response()) {
        if (now - sent_at_ >= route_->response_timeout) {
          return backend_failed(504, "timeout", "the backend did not answer in time");
        }
      } else if (now - last_activity_ >= route_->idle_timeout) {
        // A body stalled either way: the browser's upload, the backend's reading, or the
        // response's bytes.
        WSB_LOG(kInfo) << "proxy: " << route_->path << ": no byte for "
                       << route_->idle_timeout.count() << " ms: closing";
        if (response_) return close_now();
        if (backend_full_) return backend_failed(504, "timeout", "the backend stopped reading");
        return refuse(408, "the request body stopped coming");
      }
      break;
    case Phase::kTunnel:
      if (token_expires_ && now >= *token_expires_) {
        tunnel_ended("wsbridge", "token expired");
        return close_now();
      }
      if (route_->websocket_idle_timeout.count() > 0 &&
          now - last_activity_ >= route_->websocket_idle_timeout) {
        tunnel_ended("wsbridge", "websocket_idle_timeout");
        return close_now();
      }
      break;
    case Phase::kHandingBack:
      return hand_back();
    case Phase::kLingering:
      if (now - last_activity_ >= kLingerQuiet || now - phase_since_ >= kLingerMax) {
        phase_ = Phase::kClosing;
        client_->close();  // (flushes the answer if it is still leaving)
        client_.reset();
        return service_.retire(this);
      }
      break;
    case Phase::kClosing:
      return;
  }
  arm_timer();
}

std::chrono::milliseconds ClientConnection::config_timeout() const {
  const auto& config = service_.host().current_config();
  return std::chrono::duration_cast<std::chrono::milliseconds>(config->limits.handshake_timeout);
}

void ClientConnection::count_response(unsigned status) {
  proxy_metrics::response(route_ != nullptr ? route_->path : std::string_view("-"), status);
}

}  // namespace wsbridge::reverse_proxy
