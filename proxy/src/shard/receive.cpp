// What a client sends: reassembly within max_message_bytes, UTF-8, the rate limit, token
// refreshes, and MQTT clients refused in MQTT.
#include "shard/shard_parts.hpp"

#include <nlohmann/json.hpp>

#include "compression/shared_deflate.hpp"
#include "handshake/mqtt_refusal.hpp"
#include "wsbridge/bounded_json.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge {

void Shard::on_fragment(Session& s, const InboundFragment& fragment) {
  const std::string_view in = fragment.bytes;
  const std::size_t len = in.size();
  s.last_rx = SteadyClock::now();
  // Once a close is decided nothing more from this client reaches the adapter. lws may go on
  // calling RECEIVE after that: permessage-deflate drains its inflater chunk by chunk and ignores
  // what this callback returns, so closes are never left to a -1 returned from here.
  if (s.closing()) return;
  if (s.mqtt_refusal) return refuse_mqtt(s, in);
  const bool first = s.rx_buffer.empty();
  if (first) {
    s.rx_binary = fragment.binary;
    s.rx_compressed = fragment.compressed;
    s.rx_utf8.reset();
    s.rx_buffer.assign(kFrameHeadroom, '\0');
    // Reserve for the whole first frame up front (its length is known), within the limit.
    const std::size_t expected = len + fragment.expected;
    s.rx_buffer.reserve(kFrameHeadroom + std::min(expected, s.route->max_message_bytes));
  }
  // (A compressed message is held to the limit twice: as it arrives, and as it inflates.)
  // The bytes the frame's header announces count too: a client that declares a frame over the
  // limit is refused on its first bytes, not after it has sent max_message_bytes of them.
  if (s.rx_buffer.size() - kFrameHeadroom + len + fragment.expected > s.route->max_message_bytes) {
    return refuse_message(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                          "message over " + std::to_string(s.route->max_message_bytes) + " bytes");
  }
  const bool final = fragment.final;
  // A message whole in one piece is passed on at once; one that arrives in pieces (fragments, or
  // one frame over several reads) is held until it is whole: counted, so that thousands of
  // clients each holding an unfinished message under max_message_bytes cannot exhaust memory.
  if (!(first && final) &&
      !hold_input(s, HeldBytes::Part::kReassembly, s.rx_buffer.size() - kFrameHeadroom + len,
                  fragment.expected)) {
    return refuse_message(s, static_cast<std::uint16_t>(CloseCode::kTryAgainLater),
                          "server busy: too many bytes of unfinished messages held");
  }
  s.rx_buffer.append(in);
  if (!s.rx_binary && !s.rx_compressed &&
      (!s.rx_utf8.feed(reinterpret_cast<const unsigned char*>(in.data()), len) ||
       (final && !s.rx_utf8.complete()))) {
    return refuse_message(s, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "invalid UTF-8");
  }
  if (!final) return;
  if (s.rx_compressed && !inflate_message(s)) return;

  Frame message =
      Frame::adopt(s.rx_binary ? FrameKind::kBinary : FrameKind::kText, std::move(s.rx_buffer));
  s.rx_buffer.clear();
  s.held_input.set(HeldBytes::Part::kReassembly, 0);
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
      // After the answers queued before it: the refusal of this very message among them.
      request_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "rate limit exceeded", true);
    }
    return;
  }
  if (s.auth->jwt && message.is_text() && handle_auth_message(s, message)) return;
  s.route->adapter->on_message(s.handle, std::move(message));
}

// Closes the session for the message being received (too large, not UTF-8, not inflatable).
void Shard::refuse_message(Session& s, std::uint16_t code, const std::string& reason) {
  WSB_LOG(kInfo) << "conn " << s.id << " " << reason << ": closing with " << code;
  s.rx_buffer.clear();
  s.rx_buffer.shrink_to_fit();
  s.held_input.set(HeldBytes::Part::kReassembly, 0);
  request_close(s, code, reason, false);
}

bool Shard::hold_inbound(ConnectionId id, std::size_t bytes, InboundHold kind) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return true;  // (closed: it holds nothing any more)
  return hold_input(*it->second,
                    kind == InboundHold::kWaiting ? HeldBytes::Part::kAdapterWaiting
                                                  : HeldBytes::Part::kAdapterPartial,
                    bytes);
}

std::optional<SteadyClock::time_point> Shard::heard_while_held(ConnectionId id) const {
  const auto it = sessions_.find(id);
  if (it == sessions_.end() || !it->second->transport->reading_held()) return std::nullopt;
  return it->second->last_rx;  // (taking bytes while held counts: write_queued)
}

bool Shard::hold_input(Session& s, HeldBytes::Part part, std::size_t bytes,
                       std::size_t frame_rest) {
  // Every session may hold this much whatever the others hold: small messages in several
  // fragments always pass (10,000 connections hold at most 40 MB that way).
  constexpr std::size_t kAlwaysAllowed = 4096;
  // This shard's share, never below one message of the route's largest size. Messages waiting
  // for an upstream get half of it, so a slow upstream's queues cannot leave nothing to the
  // messages being received (whose refusal closes a connection, where theirs only pauses one).
  const std::size_t share =
      share_of(config_->limits.inbound_bytes_in_flight, s.route->max_message_bytes);
  const bool waiting = part == HeldBytes::Part::kAdapterWaiting;
  const std::size_t limit = waiting ? share / 2 : share;
  // A closing session reads nothing more, and its adapter lets go of what it holds soon.
  if (s.closing()) return s.held_input.set(part, 0);
  if (s.held_input.set(part, bytes, limit, kAlwaysAllowed)) return true;
  if (!waiting) {
    // Before the asker is refused, sessions holding more unfinished input than it would are
    // closed in its place, the largest first (as Envoy's overload manager resets the streams
    // that buffer the most): a client holding the bound with a few large unfinished messages
    // loses those, and clients with smaller ones go on. A tie refuses the asker. The asker is
    // judged with the rest of the frame it is receiving: a large message arriving in pieces
    // would otherwise look small at its first piece and close one larger than itself.
    const std::size_t asking = s.held_input.unfinished_with(part, bytes) + frame_rest;
    while (Session* victim = largest_unfinished_input(s, asking)) {
      close_for_input(*victim, s);
      if (s.held_input.set(part, bytes, limit, kAlwaysAllowed)) return true;
    }
  }
  if (waiting) {
    WSB_LOG(kDebug) << "conn " << s.id << " paused: its messages waiting for the upstream would "
                    << "take input held on this thread past " << limit
                    << " bytes ([limits] inbound_bytes_in_flight)";
    return false;
  }
  s.metrics->inbound_budget_closes->inc();
  if (inbound_warnings_.due()) {
    WSB_LOG(kWarn) << "conn " << s.id << " (" << s.handle->identity().remote_address
                   << ") closed with 1013: unfinished input held on this thread is "
                   << inbound_bytes_in_flight_ << " bytes of its " << share
                   << " ([limits] inbound_bytes_in_flight); " << inbound_warnings_.occurrences()
                   << " connection(s) closed so since the last such line";
  }
  return false;
}

Session* Shard::largest_unfinished_input(const Session& asker, std::size_t asking) {
  Session* largest = nullptr;
  std::size_t most = asking;
  for (auto& [id, session] : sessions_) {
    if (session == &asker || session->closing()) continue;
    const std::size_t held = session->held_input.unfinished();
    if (held > most) {
      most = held;
      largest = session;
    }
  }
  return largest;
}

void Shard::close_for_input(Session& victim, const Session& asker) {
  victim.metrics->inbound_budget_closes->inc();
  if (inbound_warnings_.due()) {
    WSB_LOG(kWarn) << "conn " << victim.id << " (" << victim.handle->identity().remote_address
                   << ") closed with 1013: it held " << victim.held_input.unfinished()
                   << " bytes of unfinished input, the most on this thread, when conn " << asker.id
                   << " needed room ([limits] inbound_bytes_in_flight); "
                   << inbound_warnings_.occurrences()
                   << " connection(s) closed so since the last such line";
  }
  // Its adapter lets go of its part when told of the close; counted as gone from now on.
  victim.held_input.set(HeldBytes::Part::kAdapterPartial, 0);
  refuse_message(victim, static_cast<std::uint16_t>(CloseCode::kTryAgainLater),
                 "server busy: closed to make room for other clients' unfinished messages");
}

// A whole compressed message (shared permessage-deflate) becomes the message: inflated within the
// route's limit, then checked as UTF-8 if it is text. false: the session is closing.
bool Shard::inflate_message(Session& s) {
  const std::size_t limit = s.route->max_message_bytes;
  shared_deflate::Inflated inflated =
      shared_deflate::inflate_message(std::string_view(s.rx_buffer).substr(kFrameHeadroom), limit);
  if (inflated.status == shared_deflate::InflateStatus::kTooLarge) {
    refuse_message(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                   "message over " + std::to_string(limit) + " bytes");
    return false;
  }
  if (inflated.status == shared_deflate::InflateStatus::kCorrupt) {
    // RFC 7692 8.1: _Fail the WebSocket Connection_; 1007, as for invalid UTF-8.
    refuse_message(s, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "invalid compressed data");
    return false;
  }
  s.rx_buffer = std::move(inflated.bytes);
  if (!s.rx_binary) {
    const std::string_view text = std::string_view(s.rx_buffer).substr(kFrameHeadroom);
    s.rx_utf8.reset();
    if (!s.rx_utf8.feed(reinterpret_cast<const unsigned char*>(text.data()), text.size()) ||
        !s.rx_utf8.complete()) {
      refuse_message(s, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "invalid UTF-8");
      return false;
    }
  }
  return true;
}

// The client's first packet should be its CONNECT: answer it with a refusing CONNACK, then
// close with the reason (which MQTT 3.1.1 clients cannot otherwise see). mqtt.js in Node writes a
// CONNECT in several WebSocket messages, so they are gathered until the packet is whole (or
// clearly is not coming: a bound).
void Shard::refuse_mqtt(Session& s, std::string_view bytes) {
  constexpr std::size_t kMaxConnectBytes = 64 * 1024;
  if (s.closing()) return;
  s.mqtt_connect.append(bytes.substr(0, kMaxConnectBytes - s.mqtt_connect.size()));
  const auto size = mqtt_refusal::packet_size(s.mqtt_connect);
  if (s.mqtt_connect.size() < kMaxConnectBytes && (!size || s.mqtt_connect.size() < *size)) return;
  const std::string_view connect = s.mqtt_connect;
  const std::string reason = *s.mqtt_refusal;
  WSB_LOG(kInfo) << "conn " << s.id << " is an MQTT client: " << reason;
  const std::string connack = mqtt_refusal::connack_for(connect, reason);
  if (!connack.empty()) enqueue(s, Frame::binary(connack));
  request_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, std::string(text::utf8_prefix(reason, 120)),
                true);
}

bool Shard::within_rate(Session& s) {
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
bool Shard::handle_auth_message(Session& s, const Frame& message) {
  const std::string_view text = message.payload();
  const auto start = text.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos || text[start] != '{' ||
      text.find("\"auth\"") == std::string_view::npos) {
    return false;
  }
  const auto doc = bounded_json::parse(text);
  if (bounded_json::string_member(doc, "type") != "auth") return false;
  nlohmann::json reply = {{"type", "ack"}};
  if (doc.contains("id")) {
    if (!bounded_json::is_request_id(doc["id"])) {
      reply = {{"type", "error"},
               {"code", "bad_request"},
               {"message", std::string(bounded_json::kBadRequestId)}};
      enqueue(s, Frame::text(reply.dump()));
      return true;
    }
    reply["id"] = doc["id"];
  }
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
                 : auth::reauthenticate(auth_policy(s.listener, *current), who.user, who.claims,
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

CredentialCheck Shard::authenticate_in_band(ConnectionId id, std::string_view credential) {
  CredentialCheck check;
  const auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    check.reason = "the connection is closed";
    return check;
  }
  Session& s = *it->second;
  // Judged by the configuration in force now, as a new handshake on this route would be.
  const RouteConfig* current = config_->find_route(s.route->path);
  if (current == nullptr) {
    check.reason = "this route no longer exists";
    return check;
  }
  auth::AuthDecision d =
      auth::authenticate_in_band(auth_policy(s.listener, *current), config_->auth, credential,
                                 std::nullopt, std::chrono::system_clock::now());
  if (!d.allowed) {
    WSB_LOG(kInfo) << "conn " << s.id << " in-band credential refused: " << d.reason;
    check.reason = d.reason;
    return check;
  }
  // The TLS client certificate still stands: only the handshake may say its claims.
  const nlohmann::json& upgrade_claims = s.handle->identity().claims;
  for (const char* name : {"cert.cn", "cert.san", "cert.fingerprint"}) {
    d.claims.erase(name);
    if (upgrade_claims.contains(name)) d.claims[name] = upgrade_claims[name];
  }
  s.expires_at = d.expires_at;  // the timer closes it (1008) when the credential expires
  WSB_LOG(kInfo) << "conn " << s.id << " authenticated in-band as " << log_field_value(d.user)
                 << " (" << d.method << ")";
  check.ok = true;
  check.user = std::move(d.user);
  check.claims = std::move(d.claims);
  check.auth_method = std::move(d.method);
  check.acl = std::move(d.acl);
  return check;
}

}  // namespace wsbridge
