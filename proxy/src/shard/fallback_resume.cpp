// A WebSocket that takes over a fallback session (docs/FALLBACK.md, "Moving to a WebSocket"): the
// client, on SSE or polling because a WebSocket once failed, finds one that works and moves the
// session itself onto it, so its subscriptions, its queue and its place in the message stream go
// along, and nothing is lost or repeated. The upgrade names the session with its token and the
// last message id the client has; it must reach the session's shard, so a socket that landed on
// another shard is handed over there (as a held upgrade is handed back: the socket leaves lws and
// is adopted again with the request bytes lws had read), and lws reads the upgrade again there.
#include <algorithm>

#include <nlohmann/json.hpp>

#include "auth/authenticator.hpp"
#include "fallback/fallback_transport.hpp"
#include "fallback/records.hpp"
#include "handshake/upgrade_headers.hpp"
#include "handshake/upgrade_hold.hpp"
#include "http/http_reply.hpp"
#include "recv_hook/mask_guard.hpp"
#include "shard/shard_parts.hpp"
#include "shard/websocket_transport.hpp"
#include "tls/client_identity.hpp"
#include "tls/session_handover.hpp"

namespace wsbridge {

int Shard::confirm_resume(lws* wsi, const RouteConfig& route, ConnectionData& data) {
  if (const auto repeated = repeated_argument(wsi, {"s", "last"})) {
    return refuse_upgrade(wsi, 400, "bad_request",
                          "more than one " + std::string(*repeated) + "= query argument");
  }
  const auto token = query_value(wsi, "s");
  // (Bound to the route and the certificate that opened the session: session_token.hpp.)
  const std::string client_cert =
      lws_is_ssl(wsi) != 0 ? tls::verified_client_fingerprint(lws_get_ssl(wsi)) : std::string();
  const auto named = token ? shared_.tokens->verify(*token, std::chrono::system_clock::now(),
                                                    {route.path, client_cert})
                           : std::nullopt;
  // (A WebSocket cannot be forwarded to another instance: it opens where it lands.)
  const std::optional<std::uint64_t> id =
      named && named->mine ? std::optional<std::uint64_t>(named->connection) : std::nullopt;
  if (!id || *id == 0) {
    return refuse_upgrade(wsi, 404, "unknown_session", "unknown or expired session");
  }
  const unsigned owner = static_cast<unsigned>((*id - 1) % shared_.count);
  if (owner != index_) {
    // The session lives on another shard: the socket goes there, and the upgrade with it.
    const int fd = lws_get_socket_fd(wsi);
    std::string bytes = mask_guard::take_request_bytes(fd);
    if (bytes.empty()) {
      return refuse_upgrade(wsi, 500, "resume", "this upgrade cannot be moved to its session");
    }
    const auto kept = upgrade_hold::detach_socket(fd);
    if (!kept) return refuse_upgrade(wsi, 503, "max_connections", "out of file descriptors");
    mask_guard::forget(fd);
    auto handed = std::make_shared<HandedSocket>();
    handed->fd = *kept;
    handed->request_bytes = std::move(bytes);
    handed->listener = listener_index(lws_get_vhost(wsi)).value_or(0);
    if (lws_is_ssl(wsi) != 0) handed->ssl = tls::keep_session(lws_get_ssl(wsi));
    // Sent on once this shard's lws has let go of the connection (WSI_DESTROY): its close of
    // the TLS session (a quiet shutdown, then SSL_free) must not run beside the owner's use of
    // the same session on another thread (a hostile probe crashed the process that way).
    data.moving = std::move(handed);
    data.moving_to = owner;
    return -1;  // lws closes its side: the placeholder socket, not the client's
  }
  auto session = fallback_sessions_.find(*id);
  if (session == fallback_sessions_.end() || sessions_.at(*id)->route->path != route.path ||
      sessions_.at(*id)->closing()) {
    return refuse_upgrade(wsi, 404, "unknown_session", "no fallback session to resume here");
  }
  const auto origin = header_if_present(wsi, WSI_TOKEN_ORIGIN);
  const auto listener = listener_of_vhost_.find(lws_get_vhost(wsi));
  if ((listener != listener_of_vhost_.end() && !listener->second->origins.allows(origin)) ||
      !auth_policy(wsi, route).origins.allows(origin)) {
    return refuse_upgrade(wsi, 403, "origin",
                          "origin " + origin.value_or("(none)") + " is not allowed");
  }
  // lws selects the first offered subprotocol it knows, of any route's: as on a first upgrade,
  // it must be one of this route's (the client gets no protocol its route does not speak).
  // bearer.<token> entries carry no protocol (and no credential here: the token is the session's).
  bool offered_any = false;
  const std::optional<std::string> selected =
      lws_selected_subprotocol(auth::split_header_list(header(wsi, WSI_TOKEN_PROTOCOL)),
                               lws_tables_->knows_subprotocol(), offered_any);
  if (offered_any && (!selected || std::find(route.subprotocols.begin(), route.subprotocols.end(),
                                             *selected) == route.subprotocols.end())) {
    return refuse_upgrade(wsi, 400, "subprotocol",
                          unsupported_subprotocol_reason(route.subprotocols));
  }
  std::uint64_t last = 0;
  if (const auto text = query_value(wsi, "last"); text && !text->empty()) {
    const auto n = fallback::parse_decimal(*text);
    if (!n) return refuse_upgrade(wsi, 400, "bad_request", "last= must be a message id");
    last = *n;
  }
  auto pending = std::make_unique<PendingUpgrade>();
  pending->resume = *id;
  pending->resume_last = last;
  // No compression: the session's handle was published with the fallback's plain wire format,
  // which fan-out threads read (a resumed session keeps it).
  data.pending = std::move(pending);
  return 0;
}

void Shard::adopt_handed_sockets() {
  std::vector<HandedSocket> handed;
  handed.swap(handed_sockets_);
  for (HandedSocket& h : handed) {
    if (refusing_new() || h.listener >= listener_vhosts_.size()) {
      upgrade_hold::reply_and_close(
          h.fd, 503, "shutting down", h.ssl,
          own_answer_headers(h.listener < listener_vhosts_.size() ? listener_vhosts_[h.listener]
                                                                  : nullptr));
      continue;
    }
    watch_adopted(h.fd, listener_vhosts_[h.listener]);
    if (h.ssl != nullptr) tls::hand_over_on_next_new(h.ssl);
    if (h.replayed) {
      // What the reverse proxy read: lws reads it as from the socket (a request with a body
      // among it too, which lws 4.1.6 cannot take from a buffer given at adoption), from a
      // POLLIN handed to it next iteration (none comes from the socket for these bytes).
      mask_guard::replay_first(h.fd, std::move(h.request_bytes));
      if (lws_adopt_socket_vhost(listener_vhosts_[h.listener], h.fd) != nullptr) {
        plaintext_waiting_.push_back(h.fd);
      }
    } else {
      // As release_held_upgrades: the guard sees the bytes, lws parses the upgrade again.
      std::string copy = h.request_bytes;
      mask_guard::after_recv(h.fd, copy.data(), static_cast<long>(copy.size()));
      lws_adopt_socket_vhost_readbuf(listener_vhosts_[h.listener], h.fd, h.request_bytes.data(),
                                     h.request_bytes.size());
    }
    tls::end_hand_over();
  }
}

int Shard::resume_on_websocket(lws* wsi, ConnectionData& data, PendingUpgrade& upgrade) {
  const ConnectionId id = *upgrade.resume;
  auto it = fallback_sessions_.find(id);
  if (it == fallback_sessions_.end() || sessions_.at(id)->closing()) {
    // It ended between the 101 and now: the WebSocket closes as the session did.
    return -1;
  }
  Session& s = *sessions_.at(id);
  fallback::FallbackTransport::Handover handover = it->second->hand_over(upgrade.resume_last);
  // POSTs held for it (its reading paused) are not applied: the session is the WebSocket's now,
  // and the client sends there what it was told was not taken. (wsbridge.js waits for its POST
  // before it moves; a 410 with no close in it said "closed" of a session that went on.)
  it->second->answer_held_posts(
      404, R"({"error":"moved","message":"the session moved to a WebSocket: send there"})");
  fallback_sessions_.erase(it);
  // (The same client, now on a WebSocket: its address as the session knew it.)
  s.transport = std::make_unique<WebSocketTransport>(
      wsi, s.transport->peer_address(), socket_writer_, shared_deflate::WireFormat{}, false);
  data.session = &s;
  if (s.reading_paused) s.transport->set_reading(false);
  s.last_rx = SteadyClock::now();
  nlohmann::json welcome = {{"type", "welcome"},
                            {"conn", id},
                            {"transport", "websocket"},
                            {"resumed", true},
                            {"from", handover.last_id + 1 - handover.unsent.size()}};
  if (handover.lost) {
    welcome["lost"] = {{"from", handover.lost->first}, {"to", handover.lost->second}};
  }
  // The welcome, then what the client has not had, before anything queued since.
  std::vector<Frame> first;
  first.push_back(Frame::text(welcome.dump()));
  for (Frame& f : handover.unsent) first.push_back(std::move(f));
  for (const Frame& f : first) s.queued_bytes += f.size();
  s.outbox.prepend(std::move(first));
  s.outbox_changed();
  log_structured(
      LogLevel::kInfo,
      "conn " + std::to_string(id) + " moved to a WebSocket remote=" + s.transport->peer_address(),
      {{"event", "moved"}, {"conn", id}, {"transport", "websocket"}});
  s.transport->want_write();
  return 0;
}

void Shard::send_socket_on(lws* wsi, ConnectionData& data) {
  std::shared_ptr<HandedSocket> handed = std::move(data.moving);
  if (!handed) return;
  InboxCommand command;
  command.type = InboxCommand::Type::kAdoptSocket;
  command.socket = handed;
  if (!shared_.shards[data.moving_to]->inbox()->post(std::move(command))) {
    upgrade_hold::reply_and_close(handed->fd, 503, "shutting down", handed->ssl,
                                  own_answer_headers(lws_get_vhost(wsi)));
  }
}

}  // namespace wsbridge
