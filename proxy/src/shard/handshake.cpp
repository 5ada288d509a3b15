// The upgrade checks, before the 101: path, framing, version, key, limits, subprotocol, Origin,
// authentication; refusals with their status.
#include "shard/shard_parts.hpp"

#include <algorithm>
#include <limits>
#include <utility>

#include "handshake/ip_address.hpp"
#include "handshake/mqtt_refusal.hpp"
#include "handshake/upgrade_headers.hpp"
#include "http/http_reply.hpp"
#include "recv_hook/mask_guard.hpp"

namespace wsbridge {

const auth::RouteAuth& Shard::auth_policy(lws* wsi, const RouteConfig& route) const {
  if (!route.has_own_auth) {
    auto listener = listener_of_vhost_.find(lws_get_vhost(wsi));
    if (listener != listener_of_vhost_.end() && listener->second->auth)
      return *listener->second->auth;
  }
  return route.auth;
}

const auth::RouteAuth& Shard::auth_policy(std::size_t listener, const RouteConfig& route) const {
  if (!route.has_own_auth && listener < config_->listeners.size() &&
      config_->listeners[listener].auth) {
    return *config_->listeners[listener].auth;
  }
  return route.auth;
}

// Every connection accepted on a public listener takes a place under max_http_connections_per_ip
// until it carries a WebSocket: without it one address could hold every descriptor the process
// has with connections that each send a request now and then (or start one every handshake
// timeout), and the fd limit would then refuse everyone. Connections from trusted proxies are not
// counted here (they carry many clients, whose own address only the request tells).
//
// Taken as the connection is accepted (FILTER_NETWORK_CONNECTION), before lws does any work on
// it: on a TLS listener lws answers a ClientHello already waiting in the socket as it adopts the
// connection, so a refusal any later costs the server's half of a handshake.
bool Shard::admit_http_connection(lws* listener, int fd) {
  pending_http_slot_.reset();  // (an adoption that failed before taking it: that socket is gone)
  if (lws_get_vhost(listener) == admin_vhost_) return true;
  auto slot = http_slot_for(peer_address_of_socket(fd));
  if (!slot) return false;
  if (*slot) pending_http_slot_.emplace(fd, std::move(**slot));
  return true;
}

// The accepted connection takes the place admit_http_connection found for it. A socket adopted
// without an accept (one the reverse proxy hands back) is counted here; a held upgrade coming
// back is not (its session's slot counts it).
bool Shard::take_http_slot(lws* wsi, ConnectionData& data) {
  const int fd = lws_get_socket_fd(wsi);
  if (pending_http_slot_ && pending_http_slot_->first == fd) {
    data.http_slot = std::make_unique<ConnectionSlots::Slot>(std::move(pending_http_slot_->second));
    pending_http_slot_.reset();
    return true;
  }
  if (lws_get_vhost(wsi) == admin_vhost_ || (adopting_ && fd == adopting_fd_)) return true;
  auto slot = http_slot_for(peer_address(wsi));
  if (!slot) return false;
  if (*slot) data.http_slot = std::make_unique<ConnectionSlots::Slot>(std::move(**slot));
  return true;
}

// The guard's watch of a socket lasts until lws lets the socket go, and lws names the socket
// only while it is open: its connection's ConnectionData keeps the number for WSI_DESTROY (lws
// has closed it by then, and not every path calls CLOSED or CLOSED_HTTP first). Until lws makes
// one, the number is kept here. A watch left behind would follow the next socket given that
// number on this thread (a broker connection's CONNACK read as a pipelined request head).
void Shard::watch_adopted(int fd, const lws_vhost* vhost) {
  // (The one before was adopted or is gone: adoption ends within the call that began it.)
  if (unadopted_watch_fd_ >= 0 && unadopted_watch_fd_ != fd) {
    mask_guard::forget(unadopted_watch_fd_);
  }
  mask_guard::watch_http(fd, this, &own_answer_headers(vhost));
  unadopted_watch_fd_ = fd;
}

// lws adopts an accepted TLS socket by reading its ClientHello before NEW_CLIENT_INSTANTIATED;
// when that fails (the client closed or sent no TLS) the wsi is destroyed without ever being
// instantiated, and the place taken at the accept would stay counted against the address until
// this shard's next accept. (A plain socket's descriptor reads -1 here: lws has closed it; a
// pending place outside an adoption is stale in any case, adoption being one call.) The guard's
// watch of the socket goes with it.
void Shard::adoption_failed(int fd) {
  if (pending_http_slot_ && (fd < 0 || pending_http_slot_->first == fd)) {
    pending_http_slot_.reset();
  }
  if (unadopted_watch_fd_ >= 0 && (fd < 0 || fd == unadopted_watch_fd_)) {
    mask_guard::forget(std::exchange(unadopted_watch_fd_, -1));
  }
}

// A place for a connection from `peer`: nullopt when its address has none left (logged,
// counted), an empty one when it is not counted (a trusted proxy).
std::optional<std::optional<ConnectionSlots::Slot>> Shard::http_slot_for(const std::string& peer) {
  if (config_->trusted_proxies.trusts(peer)) return std::optional<ConnectionSlots::Slot>();
  ConnectionSlots::Refusal refusal = ConnectionSlots::Refusal::kNone;
  auto slot = shared_.http_slots.take(
      peer,
      {std::numeric_limits<std::size_t>::max(), config_->limits.max_http_connections_per_ip,
       config_->limits.ipv6_prefix_length},
      refusal);
  if (slot) return slot;
  core_metrics::upgrade_refused("max_http_connections_per_ip");
  if (http_cap_warnings_.due()) {
    const std::string group = address_group(peer, config_->limits.ipv6_prefix_length);
    WSB_LOG(kWarn) << peer << (group == peer ? "" : " (counted in " + group + ")") << " has "
                   << config_->limits.max_http_connections_per_ip
                   << " connections open without a WebSocket: closing its new ones ([limits] "
                      "max_http_connections_per_ip; logged at most every 5 s)";
  }
  return std::nullopt;
}

std::optional<ConnectionSlots::Slot> Shard::take_session_slot(const std::string& client,
                                                              ConnectionSlots::Refusal& refusal) {
  return shared_.slots.take(
      client,
      {config_->limits.max_connections, config_->limits.max_connections_per_ip,
       config_->limits.ipv6_prefix_length},
      refusal);
}

// The TCP peer: while the connection holds its place under max_http_connections_per_ip, the
// address found for it at accept (a getpeername saved on every handshake), else the socket's.
std::string Shard::tcp_peer(lws* wsi) const {
  const ConnectionData* data = ConnectionData::of(wsi);
  if (data != nullptr && data->http_slot) return data->http_slot->address();
  return peer_address(wsi);
}

std::string Shard::client_address(lws* wsi) const {
  std::string peer = tcp_peer(wsi);
  if (config_->trusted_proxies.empty()) return peer;
  return config_->trusted_proxies.client_of(peer, header(wsi, WSI_TOKEN_X_FORWARDED_FOR));
}

int Shard::refuse_upgrade(lws* wsi, unsigned status, std::string_view code,
                          const std::string& reason, bool challenge) {
  WSB_LOG(kInfo) << "refused upgrade to " << header(wsi, WSI_TOKEN_GET_URI) << " from "
                 << client_address(wsi) << ": " << status << " " << reason;
  core_metrics::upgrade_refused(code);
  if (status == 401 || status == 403) core_metrics::auth_failed(code);
  HeaderList extra;
  if (status == 426) extra.emplace_back("Sec-WebSocket-Version:", "13");
  if (challenge) extra.emplace_back("WWW-Authenticate:", "Bearer realm=\"wsbridge\"");
  if (status == 503 && refusing_new()) extra.emplace_back("Retry-After:", "1");
  write_http_reply(wsi, status, "text/plain", reason + "\n", extra);
  mask_guard::upgrade_refused(lws_get_socket_fd(wsi));  // lws reads on as HTTP
  return 1;
}

int Shard::confirm_upgrade(lws* wsi) {
  if (const ListenerConfig* listener = listener_of(wsi);
      listener != nullptr && listener->redirect_to_https) {
    return redirect_to_https(wsi, *listener->redirect_to_https);
  }
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
  if (route == nullptr && lws_get_vhost(wsi) != admin_vhost_ && !config_->proxies.empty()) {
    std::string head = mask_guard::take_request_bytes(lws_get_socket_fd(wsi));
    if (config_->proxy_for(reverse_proxy::request_path_of(head, uri), true) != nullptr) {
      // The WebSocket pass-through: the proxy relays the upgrade to the backend, and checks its
      // credentials first, a bearer.<token> subprotocol entry (out of the head) among them.
      bool only_bearer = false;
      auto bearer = mask_guard::take_bearer_token(lws_get_socket_fd(wsi), only_bearer);
      return take_over_for_proxy(wsi, std::move(head), std::move(bearer));
    }
  }
  if (route == nullptr)
    return refuse_upgrade(wsi, 404, "not_found", "no WebSocket route at this path");
  if (header(wsi, WSI_TOKEN_VERSION) != "13") {
    return refuse_upgrade(wsi, 426, "bad_version", "only WebSocket version 13 is supported");
  }
  if (!valid_websocket_key(header(wsi, WSI_TOKEN_KEY))) {
    return refuse_upgrade(wsi, 400, "bad_request", "missing or malformed Sec-WebSocket-Key");
  }
  {
    // What lws 4.1.6 would drop unanswered after this callback (handshake/upgrade_headers.hpp).
    const auto connection = header_if_present(wsi, WSI_TOKEN_CONNECTION);
    const auto protocols = header_if_present(wsi, WSI_TOKEN_PROTOCOL);
    const int extensions = lws_hdr_total_length(wsi, WSI_TOKEN_EXTENSIONS);
    if (auto problem = upgrade_headers_problem({connection, protocols,
                                                static_cast<std::size_t>(std::max(0, extensions)),
                                                lws_tables_->knows_subprotocol()})) {
      return refuse_upgrade(wsi, 400, "bad_request", *problem);
    }
  }
  if (refusing_new()) {
    return refuse_upgrade(wsi, 503, "shutting_down",
                          stopping_ ? "shutting down" : "draining before a restart");
  }

  ConnectionData* data = ConnectionData::of(wsi);
  if (data == nullptr) return -1;  // not accepted by this shard (never happens): unchecked
  if (query_has(wsi, "_wsb", "resume")) return confirm_resume(wsi, *route, *data);
  const std::string ip = client_address(wsi);
  // An upgrade coming back from its admission check: its checks passed on the first pass.
  if (data->admitted) {
    Admitted admitted = std::move(*data->admitted);
    data->admitted.reset();
    const AdmissionResult& v = admitted.verdict;
    if (v.status < 200 || v.status > 299) {
      return refuse_upgrade(wsi, v.status, "admission",
                            v.reason.empty() ? "refused by the admission check" : v.reason);
    }
    if (v.claims.is_object()) {
      for (const auto& [key, value] : v.claims.items()) admitted.decision.claims[key] = value;
    }
    data->pending = std::make_unique<PendingUpgrade>(
        PendingUpgrade{std::move(admitted.decision), std::move(admitted.slot), std::nullopt,
                       compression_for(wsi, *route), std::nullopt, 0});
    return 0;
  }
  // Taken here, the place travels with the upgrade (held, pending, session) until it is gone.
  ConnectionSlots::Refusal refusal = ConnectionSlots::Refusal::kNone;
  std::optional<ConnectionSlots::Slot> slot = take_session_slot(ip, refusal);
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
    bool offered_any = false;
    const std::optional<std::string> selected =
        lws_selected_subprotocol(offered, lws_tables_->knows_subprotocol(), offered_any);
    const bool only_bearer = !offered_any;
    const std::string accepted = joined_subprotocols(route->subprotocols);
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
      std::string mqtt_routes;
      for (const auto& r : config_->routes) {
        if (std::find(r.subprotocols.begin(), r.subprotocols.end(), *selected) !=
            r.subprotocols.end()) {
          mqtt_routes += (mqtt_routes.empty() ? "" : ", ") + r.path;
        }
      }
      mqtt_refusal_reason = "not MQTT: route " + route->path + " speaks the " +
                            route->adapter_name + " adapter's messages (docs/PROTOCOL.md); " +
                            (mqtt_routes.empty() ? "no route here speaks MQTT"
                                                 : "MQTT clients connect to " + mqtt_routes);
    } else if (!accepted_here) {
      return refuse_upgrade(wsi, 400, "subprotocol",
                            unsupported_subprotocol_reason(route->subprotocols));
    }
  }

  auth::HandshakeRequest request;
  if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0)
    request.origin = header(wsi, WSI_TOKEN_ORIGIN);
  if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) > 0) {
    request.authorization = header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
  }
  request.cookie = cookie_header(wsi);
  read_origin_context(wsi, config_->trusted_proxies.trusts(tcp_peer(wsi)), request);
  request.subprotocols = offered;
  if (bearer) request.subprotocols.push_back("bearer." + *bearer);
  for (const std::string& arg : query_arguments(wsi)) {
    const auto eq = arg.find('=');
    request.query.emplace_back(arg.substr(0, eq),
                               eq == std::string::npos ? "" : arg.substr(eq + 1));
  }
  if (lws_is_ssl(wsi) != 0) {
    request.client_cert = tls::verified_client_certificate(lws_get_ssl(wsi));
  }
  const auto listener = listener_of_vhost_.find(lws_get_vhost(wsi));
  const auth::OriginPolicy& listener_origins =
      listener != listener_of_vhost_.end() ? listener->second->origins : auth::kAnyOrigin;
  if (route->require_client_cert) {
    if (auto missing =
            auth::client_certificate_missing(auth_policy(wsi, *route), request, listener_origins)) {
      return refuse_upgrade(wsi, missing->status, missing->code, missing->reason);
    }
  }
  auth::AuthDecision decision =
      auth::authenticate(auth_policy(wsi, *route), config_->auth, request,
                         std::chrono::system_clock::now(), listener_origins);
  if (!decision.allowed) {
    return refuse_upgrade(wsi, decision.status, decision.code, decision.reason, decision.challenge);
  }
  if (route->adapter->wants_admission() && !mqtt_refusal_reason) {
    return hold_upgrade(wsi, *route, std::move(decision), std::move(*slot));
  }
  data->pending = std::make_unique<PendingUpgrade>(
      PendingUpgrade{std::move(decision), std::move(slot), std::move(mqtt_refusal_reason),
                     compression_for(wsi, *route), std::nullopt, 0});
  return 0;
}

NegotiatedCompression Shard::compression_for(lws* wsi, const RouteConfig& route) const {
  const auto listener = listener_of_vhost_.find(lws_get_vhost(wsi));
  const CompressionConfig base =
      listener != listener_of_vhost_.end() ? listener->second->compression : CompressionConfig{};
  const CompressionConfig config = route.compression.over(base);
  return negotiate_compression(header(wsi, WSI_TOKEN_EXTENSIONS), config);
}

}  // namespace wsbridge
