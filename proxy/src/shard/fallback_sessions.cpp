// The HTTP fallback transports, session side (docs/FALLBACK.md): opening a fallback session,
// the requests its carriers hand over (attach a stream or poll, apply a POST, wake-ups), its write
// turns, its timers and its end. Everything here runs on the session's shard.
#include <nlohmann/json.hpp>

#include "fallback/records.hpp"
#include "fallback/session_request.hpp"
#include "fallback/sse_events.hpp"
#include "http/http_reply.hpp"
#include "shard/shard_parts.hpp"
#include "wsbridge/bounded_json.hpp"

namespace wsbridge {

using fallback::FallbackTransport;
using fallback::SessionRequest;

namespace {

// POSTs of one session held while its reading is paused (each up to max_post_bytes).
constexpr std::size_t kMaxHeldPosts = 4;
// The close of a session whose token is about to expire: the client is to open a new one, as
// after a server going away.
constexpr std::uint16_t kSessionEndedCode = 1001;

// A client's close record: {"type":"close","code":1000,"reason":"..."} (code and reason optional).
std::optional<PendingClose> parse_client_close(std::string_view json) {
  const auto j = bounded_json::parse(json);
  if (bounded_json::string_member(j, "type") != "close") return std::nullopt;
  PendingClose close{1000, ""};
  if (j.contains("code")) {
    if (!j["code"].is_number_integer()) return std::nullopt;
    const auto code = j["code"].get<std::int64_t>();
    if (code != 1000 && (code < 3000 || code > 4999)) return std::nullopt;
    close.code = static_cast<std::uint16_t>(code);
  }
  if (j.contains("reason")) {
    if (!j["reason"].is_string() || j["reason"].get<std::string>().size() > 123)
      return std::nullopt;
    close.reason = j["reason"].get<std::string>();
  }
  return close;
}

}  // namespace

int Shard::open_fallback_session(lws* wsi, const RouteConfig& route, fallback::CarrierKind kind,
                                 const std::string& cors_origin) {
  auto refuse = [&](unsigned status, std::string_view code, const std::string& reason,
                    bool challenge = false) {
    WSB_LOG(kInfo) << "refused a fallback session on " << route.path << " from "
                   << client_address(wsi) << ": " << status << " " << reason;
    core_metrics::upgrade_refused(code);
    if (status == 401 || status == 403) core_metrics::auth_failed(code);
    HeaderList h = fallback_answer_headers(cors_origin);
    if (challenge) h.emplace_back("WWW-Authenticate:", "Bearer realm=\"wsbridge\"");
    write_http_reply(wsi, status, "application/json",
                     nlohmann::json{{"error", code}, {"message", reason}}.dump() + "\n", h);
    return complete_http_transaction(wsi);
  };
  if (refusing_new()) return refuse(503, "shutting_down", "shutting down or draining");
  const std::string ip = client_address(wsi);
  ConnectionSlots::Refusal refusal = ConnectionSlots::Refusal::kNone;
  std::optional<ConnectionSlots::Slot> slot = take_session_slot(ip, refusal);
  if (refusal == ConnectionSlots::Refusal::kTotal) {
    return refuse(503, "max_connections", "too many connections");
  }
  if (refusal == ConnectionSlots::Refusal::kPerIp) {
    return refuse(503, "max_connections_per_ip", "too many connections from this address");
  }
  auth::HandshakeRequest request;
  request.origin = header_if_present(wsi, WSI_TOKEN_ORIGIN);
  request.authorization = header_if_present(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
  request.cookie = cookie_header(wsi);
  read_origin_context(wsi, config_->trusted_proxies.trusts(tcp_peer(wsi)), request);
  std::string query;
  for (const std::string& arg : query_arguments(wsi)) {
    const auto eq = arg.find('=');
    request.query.emplace_back(arg.substr(0, eq),
                               eq == std::string::npos ? "" : arg.substr(eq + 1));
    query += (query.empty() ? "?" : "&") + arg;
  }
  if (lws_is_ssl(wsi) != 0) {
    request.client_cert = tls::verified_client_certificate(lws_get_ssl(wsi));
  }
  const auto listener = listener_of_vhost_.find(lws_get_vhost(wsi));
  const auth::OriginPolicy& listener_origins =
      listener != listener_of_vhost_.end() ? listener->second->origins : auth::kAnyOrigin;
  if (route.require_client_cert) {
    if (auto missing =
            auth::client_certificate_missing(auth_policy(wsi, route), request, listener_origins)) {
      return refuse(missing->status, missing->code, missing->reason);
    }
  }
  auth::AuthDecision decision =
      auth::authenticate(auth_policy(wsi, route), config_->auth, request,
                         std::chrono::system_clock::now(), listener_origins);
  if (!decision.allowed) {
    return refuse(decision.status, decision.code, decision.reason, decision.challenge);
  }
  HeldOpen open;
  open.config = config_;
  open.route = &route;
  open.listener = listener_index(lws_get_vhost(wsi)).value_or(0);
  open.decision = std::move(decision);
  open.slot = std::move(slot);
  open.kind = kind;
  open.uri = route.path + query;
  open.peer = ip;
  if (request.client_cert) open.client_cert = request.client_cert->fingerprint;
  open.since = SteadyClock::now();
  if (route.adapter->wants_admission())
    return hold_fallback_open(wsi, std::move(open), cors_origin);
  open.channel = attach_carrier(wsi, kind == fallback::CarrierKind::kStream, cors_origin);
  start_fallback_session(std::move(open));
  return 0;  // the session answers through the channel
}

void Shard::start_fallback_session(HeldOpen open) {
  if (open.channel->abandoned()) return;  // its client left meanwhile (the slot goes with it)
  // (Held across a reload, the open gets the route as it is now.)
  const RouteConfig* route = config_->find_route(open.route->path);
  if (route == nullptr || !route->fallback || refusing_new()) {
    open.channel->answer(refusing_new() ? 503 : 404, "application/json",
                         refusing_new() ? R"({"error":"shutting_down","message":"shutting down"})"
                                        : R"({"error":"not_found","message":"the route is gone"})");
    return;
  }
  const auto expiry = std::chrono::system_clock::now() + config_->fallback.token_lifetime;
  Session* s = admit_session(
      *route, open.listener, std::move(open.decision), std::move(open.slot), open.uri,
      [&](ConnectionId id) {
        auto transport = std::make_unique<FallbackTransport>(
            static_cast<fallback::FallbackHost&>(*this), id, open.peer,
            shared_.tokens->issue(id, expiry, {route->path, open.client_cert}), config_->fallback,
            open.kind);
        fallback_sessions_[id] = transport.get();
        return transport;
      },
      std::nullopt, shared_deflate::WireFormat{}, false);
  wake_owner_of(*open.channel, s->id);
  auto& transport = *fallback_sessions_.at(s->id);
  transport.attach(open.channel, open.kind, 0, true);
  if (!s->outbox.empty()) transport.want_write();
}

void Shard::on_fallback_request(SessionRequest& request) {
  if (request.op == SessionRequest::Op::kAdmitted) {
    on_fallback_admitted(request);
    return;
  }
  auto it = fallback_sessions_.find(request.connection);
  if (it == fallback_sessions_.end()) {
    if (request.op != SessionRequest::Op::kWake && request.channel) answer_ended_session(request);
    return;
  }
  FallbackTransport& transport = *it->second;
  Session& s = *sessions_.at(request.connection);
  switch (request.op) {
    case SessionRequest::Op::kAttach:
      s.last_rx = SteadyClock::now();
      transport.attach(request.channel, request.kind, request.last, request.opened);
      if (!s.outbox.empty() || s.close_after_queue || s.ping_due) transport.want_write();
      break;
    case SessionRequest::Op::kPost:
      // (While its reading is paused, sending more is no sign of life: taking what waits is.)
      if (!s.reading_paused) s.last_rx = SteadyClock::now();
      if (!s.closing() && (!transport.reading() || !transport.held_posts().empty())) {
        // Reading is paused: the answer waits, and with it the client's next POST. A client
        // sends one at a time; more than a few waiting is someone else's memory.
        if (transport.held_posts().size() >= kMaxHeldPosts) {
          request.channel->answer(
              429, "application/json",
              R"({"error":"busy","message":"too many POSTs wait for this session: send one at a time"})");
          break;
        }
        transport.held_posts().push_back({std::move(request.body), request.channel});
      } else {
        apply_post(s, transport, request.body, *request.channel);
      }
      break;
    case SessionRequest::Op::kAdmitted:  // (handled above)
      break;
    case SessionRequest::Op::kWake:
      if (request.channel->abandoned()) {
        transport.carrier_gone(request.channel.get());
        transport.drop_abandoned_posts();
      } else {
        transport.want_write();
      }
      break;
  }
}

void Shard::apply_post(Session& s, FallbackTransport& transport, const std::string& body,
                       fallback::ResponseChannel& reply) {
  if (const std::optional<PendingClose> close = s.decided_close()) {
    // Nothing reaches the route from a session whose close is decided: a 200 would say these
    // messages were handed on. 410 tells the client the close, which its stream may not have
    // carried yet (stalled, or between two requests).
    reply.answer(410, "application/json", fallback::close_control(close->code, close->reason));
    return;
  }
  fallback::BodyError error = fallback::BodyError::kNone;
  std::string message;
  const auto parsed =
      fallback::parse_body(body, {s.route->max_message_bytes, 10'000, true}, error, message);
  if (!parsed) {  // (checked by the carrier already)
    reply.answer(400, "application/json",
                 nlohmann::json{{"error", "bad_request"}, {"message", message}}.dump());
    return;
  }
  const std::uint64_t expected = transport.next_sequence();
  if (parsed->first > expected || parsed->first == 0) {
    reply.answer(409, "application/json",
                 nlohmann::json{{"error", "gap"}, {"expected", expected}}.dump());
    return;
  }
  // Records before `expected` were applied by an earlier try of this POST: skipped.
  const std::size_t skip = expected - parsed->first;
  // A body is refused whole or applied: its close record (where the rest ends) is checked before
  // any message goes on. (Checked as it came, the messages before a bad one were applied and the
  // client, told 400 and no sequence number, could only give the session up.)
  std::optional<PendingClose> client_close;
  for (std::size_t i = skip; i < parsed->records.size(); ++i) {
    if (parsed->records[i].kind != 'c') continue;
    client_close = parse_client_close(parsed->records[i].payload);
    if (!client_close) {
      reply.answer(
          400, "application/json",
          R"({"error":"bad_request","message":"a control record must be {\"type\":\"close\"} with an optional code (1000, 3000-4999) and reason"})");
      return;
    }
    break;
  }
  std::uint64_t applied = 0;
  for (std::size_t i = skip; i < parsed->records.size(); ++i) {
    const fallback::Record& record = parsed->records[i];
    if (record.kind == 'c') {
      // The client ends the session (a WebSocket client's close frame): the rest is not read.
      const std::optional<PendingClose>& close = client_close;
      ++applied;
      if (!s.closing()) {
        s.close_info = CloseInfo{close->code, close->reason, true};
        s.close_sent = true;  // (nothing more goes to a client that left)
        s.handle->mark_closing();
        transport.drop_within(std::chrono::seconds(0));
      }
      break;
    }
    InboundFragment fragment;
    fragment.bytes = record.payload;
    fragment.binary = record.kind == 'b';
    fragment.expected = 0;  // a record is a whole message: nothing of it follows
    ++applied;
    on_fragment(s, fragment);
    if (s.closing()) break;  // it closed the session (the rate limit, a bad message...)
    // The route paused the session's reading (a queue at its high water): the rest waits, as a
    // WebSocket's next frames would. Applied on, one POST handed the route its 10,000 records
    // past any max_queued; the answer's `next` tells the client where to go on from.
    if (s.handle->pause_asked()) break;
  }
  transport.advance_sequence(applied);
  if (const std::optional<PendingClose> close = s.decided_close(); close && !s.close_info.by_peer) {
    // The rest of the body was not applied: the client learns why, not a sequence number.
    reply.answer(410, "application/json", fallback::close_control(close->code, close->reason));
    return;
  }
  reply.answer(200, "application/json", nlohmann::json{{"next", transport.next_sequence()}}.dump());
}

void Shard::schedule_turn(std::uint64_t connection) {
  auto it = fallback_sessions_.find(connection);
  if (it == fallback_sessions_.end() || it->second->turn_scheduled) return;
  it->second->turn_scheduled = true;
  fallback_turns_due_.push_back(connection);
}

void Shard::run_fallback_turns() {
  std::vector<ConnectionId> due;
  due.swap(fallback_turns_due_);
  const auto now = SteadyClock::now();
  for (const ConnectionId id : due) {
    auto it = fallback_sessions_.find(id);
    if (it == fallback_sessions_.end()) continue;
    FallbackTransport& transport = *it->second;
    transport.turn_scheduled = false;
    Session& s = *sessions_.at(id);
    if (transport.end_at() && now >= *transport.end_at()) {
      end_fallback_session(s);
      continue;
    }
    // POSTs held while reading was paused, in order, as long as it is not paused again (or all
    // of them, answered with the close, once one is decided).
    while ((transport.reading() || s.closing()) && !transport.held_posts().empty()) {
      fallback::HeldPost post = std::move(transport.held_posts().front());
      transport.held_posts().pop_front();
      apply_post(s, transport, post.body, *post.reply);
    }
    if (transport.carried() && on_writeable(s) != 0) end_fallback_session(s);
  }
}

void Shard::answer_ended_session(SessionRequest& request) {
  fallback::ResponseChannel& reply = *request.channel;
  auto ended = ended_fallback_.find(request.connection);
  if (ended == ended_fallback_.end() && request.op == SessionRequest::Op::kAttach &&
      request.kind == fallback::CarrierKind::kStream) {
    std::string event;
    fallback::append_control_event(event, request.last, fallback::kUnknownSessionControl);
    reply.answer(200, "text/event-stream", event);
    return;
  }
  if (ended == ended_fallback_.end()) {
    // A token that verifies, of a session that timed out: the client starts a new one.
    reply.answer(404, "application/json",
                 R"({"error":"unknown_session","message":"the session has ended: open a new one"})"
                 "\n");
    return;
  }
  const std::string json = fallback::close_control(ended->second.code, ended->second.reason);
  std::string out;
  if (request.op == SessionRequest::Op::kPost) {
    reply.answer(410, "application/json", json);
    return;
  }
  if (request.kind == fallback::CarrierKind::kStream) {
    fallback::append_control_event(out, request.last, json);
    reply.append(out);
    reply.end();
  } else {
    fallback::append_first_line(out, request.last + 1);
    fallback::append_record(out, 'c', json);
    reply.append(out);
    reply.end(200, "application/octet-stream");
  }
  ended_fallback_.erase(ended);  // told once
}

void Shard::end_fallback_session(Session& s) {
  auto* transport = fallback_sessions_.at(s.id);
  const std::optional<PendingClose> close = s.decided_close();
  if (close && !transport->close_delivered() && !s.close_info.by_peer) {
    // A decided close nothing carried: kept for the client's next request.
    ended_fallback_[s.id] = EndedFallback{close->code, close->reason,
                                          SteadyClock::now() + s.config->fallback.reconnect_window};
    s.close_info.code = close->code;
    s.close_info.reason = close->reason;
  }
  // POSTs still held (their session paused, then gone): not applied, and told the close. (With
  // none decided, the transport's end tells them 1001, "the session ended".)
  if (close) transport->answer_held_posts(410, fallback::close_control(close->code, close->reason));
  fallback_sessions_.erase(s.id);
  on_closed(&s);  // (deletes it, and with it the transport, which ends its carrier)
}

void Shard::tick_fallback_sessions(SteadyClock::time_point now) {
  expire_fallback_opens(now, false);
  std::erase_if(relays_, [](const auto& entry) { return entry.second->done(); });
  std::erase_if(ended_fallback_, [now](const auto& entry) { return now >= entry.second.until; });
  std::vector<Session*> ended;
  for (auto& [id, transport] : fallback_sessions_) {
    Session& s = *sessions_.at(id);
    if (!s.closing() && transport->token_expired(now)) {
      // Its POSTs would get 404 from now on while its stream went on, until the session was cut
      // off with its queue: told now, the client opens a new session (1001, as a server going
      // away: it reconnects) and the close reaches it on its stream or next poll.
      WSB_LOG(kInfo) << "conn " << s.id << " (" << transport->kind()
                     << "): its session token expired ([fallback] token_lifetime): closing";
      request_close(s, kSessionEndedCode, "the session's token expired: open a new session", true);
    }
    if (transport->tick(now)) {
      ended.push_back(&s);
    } else if (transport->carried() && !(s.reading_paused && s.output_waiting())) {
      // A request carries it: the client is there. (Unless it is paused for not taking what
      // waits for it: then only taking bytes shows it is alive, see Shard::on_timer.)
      s.last_rx = now;
    }
  }
  for (Session* s : ended) {
    if (!s->closing()) {
      WSB_LOG(kInfo) << "conn " << s->id << " (" << s->transport->kind()
                     << "): no request carried it within the reconnect window";
    }
    end_fallback_session(*s);
  }
}

}  // namespace wsbridge
