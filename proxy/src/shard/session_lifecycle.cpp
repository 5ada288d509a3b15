// A session from ESTABLISHED to CLOSED: its identity and place under the limits, a decided close,
// the peer's close, and the access-log line.
#include "recv_hook/mask_guard.hpp"
#include "shard/shard_parts.hpp"
#include "shard/websocket_transport.hpp"

#include <nlohmann/json.hpp>

namespace wsbridge {

int Shard::on_established(lws* wsi, ConnectionData& data) {
  const std::string uri = header(wsi, WSI_TOKEN_GET_URI);
  const RouteConfig* route = config_->find_route(uri);
  if (route == nullptr) return -1;  // confirm_upgrade already refused this; never reached
  if (!data.pending) return -1;     // not through confirm_upgrade: unchecked
  PendingUpgrade admitted = std::move(*data.pending);
  data.pending.reset();
  if (admitted.resume) return resume_on_websocket(wsi, data, admitted);

  const NegotiatedCompression& compression = admitted.compression;
  const bool shared_deflate = compression.mode == CompressionMode::kShared;
  const std::size_t listener = listener_index(lws_get_vhost(wsi)).value_or(0);
  // (The address counted at the upgrade: lws' headers may be gone by now.)
  std::string client = admitted.slot ? admitted.slot->address() : peer_address(wsi);
  Session* s = admit_session(
      *route, listener, std::move(admitted.decision), std::move(admitted.slot), uri,
      [&](ConnectionId) {
        return std::make_unique<WebSocketTransport>(wsi, std::move(client), socket_writer_,
                                                    compression.format, shared_deflate);
      },
      std::move(admitted.mqtt_refusal), compression.format, query_has(wsi, "_wsb", "welcome"));
  data.session = s;
  if (shared_deflate) mask_guard::accept_compressed(lws_get_socket_fd(wsi));
  return 0;
}

Session* Shard::admit_session(const RouteConfig& route, std::size_t listener, auth::AuthDecision d,
                              std::optional<ConnectionSlots::Slot> slot, const std::string& uri,
                              const TransportFactory& make_transport,
                              std::optional<std::string> mqtt_refusal,
                              const shared_deflate::WireFormat& format, bool welcome) {
  auto* s = new Session();
  s->id = (next_sequence_++ - 1) * shared_.count + index_ + 1;  // (id - 1) % count: the shard
  s->config = config_;
  s->route = &route;
  s->opened_at = s->last_rx = s->last_ping = SteadyClock::now();
  s->opened_wall = std::chrono::system_clock::now();
  s->transport = make_transport(s->id);
  s->listener = listener;
  s->auth = &auth_policy(s->listener, route);

  s->mqtt_refusal = std::move(mqtt_refusal);
  Identity identity;
  s->slot = std::move(slot);
  identity.user = std::move(d.user);
  identity.claims = std::move(d.claims);
  identity.auth_method = std::move(d.method);
  identity.acl = std::move(d.acl);
  identity.credential_pending = d.credential_pending;
  s->expires_at = d.expires_at;
  identity.remote_address = s->transport->peer_address();
  if (route.rate > 0) {
    s->rate_tokens = route.burst;
    s->rate_refilled_at = s->opened_at;
  }
  identity.route_path = route.path;
  identity.request_uri = uri;
  s->handle = std::make_shared<ConnectionHandle>(
      s->id, std::move(identity), inbox_,
      SendLimits{route.max_queued_bytes, route.max_queued_messages, route.queue_high_water_bytes});
  s->handle->set_wire_format(format);
  s->handle->set_host(this);
  s->held_input.bind(&inbound_bytes_in_flight_);
  sessions_.emplace(s->id, s);
  shared_.sessions.add(*s);

  s->metrics = route_metrics_.at(&route).get();
  s->metrics->open->add(1);
  s->metrics->opened->inc();
  const Identity& who = s->handle->identity();
  log_structured(LogLevel::kInfo,
                 "conn " + std::to_string(s->id) + " open remote=" + who.remote_address +
                     " path=" + route.path + " transport=" + std::string(s->transport->kind()) +
                     (who.user.empty() ? "" : " user=" + log_field_value(who.user)),
                 {{"event", "open"},
                  {"conn", s->id},
                  {"remote", who.remote_address},
                  {"path", route.path},
                  {"transport", s->transport->kind()},
                  {"user", who.user},
                  {"auth", who.auth_method}});
  if (welcome) {
    // Asked for by a client that tells a working WebSocket from a proxy that answers 101 and
    // then forwards nothing (docs/FALLBACK.md): before anything the route sends.
    enqueue(*s, Frame::text(
                    nlohmann::json{{"type", "welcome"}, {"conn", s->id}, {"transport", "websocket"}}
                        .dump()));
  }
  if (!s->mqtt_refusal) route.adapter->on_open(s->handle);
  return s;
}

void Shard::request_close(Session& s, std::uint16_t code, std::string reason, bool after_queue) {
  if (s.close_sent) return;
  // A client fails the connection on a close reason that is not UTF-8 (RFC 6455 8.1): one an
  // adapter took from upstream, or a peer instance sent, goes without it.
  if (!is_valid_utf8(reason)) reason.clear();
  const auto deadline =
      SteadyClock::now() + (after_queue ? kQueuedCloseGrace : kImmediateCloseGrace);
  if (!s.close_deadline || deadline < *s.close_deadline) s.close_deadline = deadline;
  s.handle->mark_closing();
  if (!after_queue) {
    // (A frame the socket took part of is not in the outbox: it is completed before the close.)
    s.outbox.clear();
    s.queued_bytes = 0;
    s.outbox_changed();
  }
  if (!s.close_after_queue || !after_queue) {
    s.close_after_queue = PendingClose{code, std::move(reason)};
  }
  s.transport->want_write();
}

void Shard::on_peer_close(Session& s, const void* in, std::size_t len) {
  const auto* bytes = static_cast<const unsigned char*>(in);
  if (s.close_sent) return;  // the peer is answering our close
  s.close_info.by_peer = true;
  s.close_info.code = len >= 2 ? static_cast<std::uint16_t>(bytes[0] << 8 | bytes[1]) : 1005;
  s.close_info.reason =
      len > 2 ? std::string(reinterpret_cast<const char*>(bytes) + 2, len - 2) : "";
}

void Shard::on_closed(Session* s) {
  if (s == nullptr) return;
  s->handle->mark_closed();
  sessions_.erase(s->id);
  shared_.sessions.remove(s->id);
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
                  {"messages_in", s->messages_in.load()},
                  {"messages_out", s->messages_out.load()}});
  try {
    if (!s->mqtt_refusal) s->route->adapter->on_close(s->handle, s->close_info);
  } catch (const std::exception& e) {
    WSB_LOG(kError) << "adapter " << s->route->adapter_name << " on_close threw: " << e.what();
  }
  delete s;
}

}  // namespace wsbridge
