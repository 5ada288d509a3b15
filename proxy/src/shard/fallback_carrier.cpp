// The HTTP fallback transports, carrier side (docs/FALLBACK.md): the requests under /_wsbridge/
// that this shard's connections bring. A request that opens a session makes it here; the others
// name theirs with its token and are handed to its shard, wherever the connection landed; their
// responses come back through a ResponseChannel and are written here.
#include <nlohmann/json.hpp>

#include <algorithm>

#include "fallback/records.hpp"
#include "fallback/session_request.hpp"
#include "fallback/sse_events.hpp"
#include "http/http_reply.hpp"
#include "shard/shard_parts.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge {

namespace {

using fallback::CarrierKind;
using fallback::ResponseChannel;
using fallback::ResponseKind;
using fallback::SessionRequest;

struct FallbackPath {
  std::string_view op;  // "sse", "poll" or "send"
  std::string route;    // the route's path
};

std::optional<FallbackPath> parse_fallback_path(std::string_view uri) {
  if (!uri.starts_with(kFallbackPrefix)) return std::nullopt;
  uri.remove_prefix(kFallbackPrefix.size());
  const auto slash = uri.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const std::string_view op = uri.substr(0, slash);
  if (op != "sse" && op != "poll" && op != "send") return std::nullopt;
  return FallbackPath{op, std::string(uri.substr(slash))};
}

std::string error_body(std::string_view code, std::string_view message) {
  return nlohmann::json{{"error", code}, {"message", message}}.dump() + "\n";
}

}  // namespace

// The headers every fallback answer carries: never cached, and readable by an allowed origin.
HeaderList fallback_answer_headers(const std::string& cors_origin) {
  HeaderList h{{"Cache-Control:", "no-store"}};
  if (!cors_origin.empty()) {
    h.emplace_back("Access-Control-Allow-Origin:", cors_origin);
    h.emplace_back("Access-Control-Allow-Credentials:", "true");
    h.emplace_back("Vary:", "Origin");
  }
  return h;
}

int Shard::serve_fallback(lws* wsi, std::string_view uri) {
  ConnectionData* data = ConnectionData::of(wsi);
  if (data == nullptr) return -1;  // not accepted by this shard (never happens)
  std::string cors;
  auto answer = [&](unsigned status, std::string_view code, std::string_view message,
                    HeaderList extra = {}) {
    WSB_LOG(kInfo) << "fallback request " << uri << " from " << peer_address(wsi) << ": " << status
                   << " " << message;
    HeaderList headers = fallback_answer_headers(cors);
    headers.insert(headers.end(), extra.begin(), extra.end());
    write_http_reply(wsi, status, "application/json", error_body(code, message), headers);
    return complete_http_transaction(wsi);
  };
  const auto path = parse_fallback_path(uri);
  const RouteConfig* found = path ? config_->find_route(path->route) : nullptr;
  const bool offered = config_->fallback.enabled && found != nullptr && found->fallback;
  // A session whose route a reload took the fallbacks from (or the route) is being closed
  // (close_sessions_of_withdrawn_fallbacks): its stream and polls still reach it, to carry that
  // close. (They got 404 while its stream went on: half alive, never told.)
  const bool withdrawn_session =
      path && !offered && path->op != "send" && query_value(wsi, "s").has_value();
  if (!offered && !withdrawn_session) {
    return answer(404, "not_found", "no route with HTTP fallbacks at this path");
  }
  const RouteConfig* route = offered ? found : nullptr;
  char* uri_ptr = nullptr;
  int uri_len = 0;
  const int method = lws_http_get_uri_and_method(wsi, &uri_ptr, &uri_len);
  const auto origin = header_if_present(wsi, WSI_TOKEN_ORIGIN);
  const auto listener = listener_of_vhost_.find(lws_get_vhost(wsi));
  const bool origin_ok =
      (listener == listener_of_vhost_.end() || listener->second->origins.allows(origin)) &&
      (route == nullptr || auth_policy(wsi, *route).origins.allows(origin));
  if (!origin_ok) {
    core_metrics::auth_failed("origin");
    return answer(403, "origin", "origin " + origin.value_or("(none)") + " is not allowed");
  }
  if (origin) cors = *origin;
  if (method == kLwsOptions) {  // a CORS preflight
    HeaderList h = fallback_answer_headers(cors);
    h.emplace_back("Access-Control-Allow-Methods:", "GET, POST, OPTIONS");
    h.emplace_back("Access-Control-Allow-Headers:", "Authorization, Content-Type, Last-Event-ID");
    h.emplace_back("Access-Control-Max-Age:", "600");
    write_http_reply(wsi, 204, "text/plain", "", h);
    return complete_http_transaction(wsi);
  }
  const bool send = path->op == "send";
  if (method != (send ? kLwsPost : kLwsGet)) {
    return answer(405, "method", send ? "use POST" : "use GET",
                  {{"Allow:", send ? "POST, OPTIONS" : "GET, OPTIONS"}});
  }
  // (The session and the resume point are read once here, and by a balancer or a peer too.)
  if (const auto repeated = repeated_argument(wsi, {"s", "last"})) {
    return answer(400, "bad_request",
                  "more than one " + std::string(*repeated) + "= query argument");
  }
  const auto token = query_value(wsi, "s");
  const CarrierKind kind = path->op == "sse" ? CarrierKind::kStream : CarrierKind::kPoll;
  if (!token && !send && route != nullptr) return open_fallback_session(wsi, *route, kind, cors);
  const bool forwarded = custom_header(wsi, "x-wsbridge-forwarded:").has_value();
  const auto named = token ? shared_.tokens->verify(*token, std::chrono::system_clock::now(),
                                                    {std::string(path->route),
                                                     request_client_cert(wsi, *token, forwarded)})
                           : std::nullopt;
  std::shared_ptr<const fallback::Peer> peer;
  if (named && !named->mine && !forwarded) {
    // Another instance's session (behind a balancer without stickiness): sent on to it.
    if (auto p = config_->fallback.peers.find(named->instance);
        p != config_->fallback.peers.end()) {
      peer = p->second;
    } else {
      WSB_LOG(kInfo) << "a fallback request for a session of instance " << named->instance
                     << ", which is not among [fallback] peers";
    }
  }
  if (!named || named->connection == 0 || (!named->mine && peer == nullptr)) {
    if (kind == CarrierKind::kStream && !send) {
      // An EventSource cannot read a 404's status: it learns it from an event.
      std::string event;
      fallback::append_control_event(event, 0, fallback::kUnknownSessionControl);
      HeaderList headers = fallback_answer_headers(cors);
      write_http_reply(wsi, 200, "text/event-stream", event, headers);
      return complete_http_transaction(wsi);
    }
    return answer(404, "unknown_session", "unknown or expired session: open a new one");
  }
  const std::optional<std::uint64_t> connection = named->connection;
  SessionRequest request;
  request.connection = *connection;
  if (send) {
    // (As the framing rule served it: "5 ", "5, 5" and repeated headers count.)
    const auto expected = content_length(wsi);
    if (expected && *expected > config_->fallback.max_post_bytes) {
      return answer(
          413, "too_large",
          "the body is over " + std::to_string(config_->fallback.max_post_bytes) + " bytes",
          {{"Connection:", "close"}});
    }
    // Our client has one POST in flight (and a retry may overlap it); more for one session are
    // someone holding connections and body bytes, which are what the limits here bound.
    unsigned in_flight = 0;
    SessionPostCounts::SessionKey session{peer != nullptr ? named->instance : std::string(),
                                          *connection};
    if (!shared_.session_posts.try_claim(session, kPostsInFlightPerSession, in_flight)) {
      return answer(429, "busy",
                    "this session has " + std::to_string(in_flight) +
                        " POSTs in flight already: send one at a time",
                    {{"Retry-After:", "1"}});
    }
    auto carrier = std::make_unique<FallbackCarrier>();
    carrier->claim.shard_bytes = &post_bytes_in_flight_;
    carrier->claim.session_posts = &shared_.session_posts;
    carrier->claim.session = std::move(session);
    carrier->target = *connection;
    carrier->peer = peer;
    carrier->cors_origin = cors;
    carrier->max_body = config_->fallback.max_post_bytes;
    data->carrier = std::move(carrier);
    // The body comes in HTTP_BODY; an empty one is complete now.
    const bool has_body = (expected && *expected > 0) ||
                          lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
    if (!has_body) return fallback_body_done(wsi);
    continue_if_expected(wsi);
    return 0;
  }
  request.op = SessionRequest::Op::kAttach;
  request.kind = kind;
  std::optional<std::string> last = custom_header(wsi, "last-event-id:");
  if (last) last = std::string(text::trim(*last));
  if (!last || last->empty()) last = query_value(wsi, "last");
  std::optional<std::uint64_t> resume_from;
  if (last && !last->empty()) {
    resume_from = fallback::parse_decimal(*last);
    if (!resume_from)
      return answer(400, "bad_request", "Last-Event-ID (or last=) must be a message id");
    request.last = *resume_from;
  }
  if (peer != nullptr) {
    return forward_to_peer(wsi, *peer, kind == CarrierKind::kStream, cors, {}, resume_from);
  }
  return carry(wsi, std::move(request), cors);
}

std::shared_ptr<ResponseChannel> Shard::attach_carrier(lws* wsi, bool stream,
                                                       const std::string& cors_origin) {
  ConnectionData* data = ConnectionData::of(wsi);
  if (!data->carrier) data->carrier = std::make_unique<FallbackCarrier>();
  FallbackCarrier& carrier = *data->carrier;
  // lws armed PENDING_TIMEOUT_HTTP_CONTENT (handshake_timeout) when the request's head was
  // parsed and clears it only when a body completes: left alone it would cut every event stream
  // and every held poll of a GET after handshake_timeout, answer or not. From here the session's
  // own deadlines bound the response (poll_timeout, heartbeats, sse_byte_limit, the slow-consumer
  // policy), and our request deadline returns when the transaction completes. Clearing is O(1),
  // and keeps the held polls out of lws' sorted timeout list, which every new timeout walks.
  lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
  carrier.chunked = stream && lws_get_network_wsi(wsi) == wsi &&
                    header(wsi, WSI_TOKEN_HTTP) == "HTTP/1.1" &&
                    !text::list_contains(header(wsi, WSI_TOKEN_CONNECTION), "close");
  carrier.cors_origin = cors_origin;
  carrier.key = next_carrier_key_++;
  carriers_[carrier.key] = wsi;
  // Until its answer is complete a request pipelined behind it waits in the socket: lws would
  // read its head into this one's header table and complete neither (finish_carrier releases).
  if (lws_get_network_wsi(wsi) == wsi) mask_guard::hold_next_request(lws_get_socket_fd(wsi));
  auto channel = std::make_shared<ResponseChannel>(
      stream ? ResponseKind::kStream : ResponseKind::kWhole, fallback::kChannelCapacity, LWS_PRE);
  channel->wake_carrier = [inbox = inbox_, key = carrier.key] {
    InboxCommand wake;
    wake.type = InboxCommand::Type::kCarrierWake;
    wake.connection = key;
    inbox->post(std::move(wake));
  };
  carrier.channel = channel;
  return channel;
}

void Shard::wake_owner_of(ResponseChannel& channel, std::uint64_t connection) {
  const std::shared_ptr<ServiceInbox>& owner =
      shared_.shards[(connection - 1) % shared_.count]->inbox();
  channel.wake_owner = [owner, connection,
                        weak = std::weak_ptr<ResponseChannel>(channel.shared_from_this())] {
    auto command = std::make_shared<SessionRequest>();
    command->op = SessionRequest::Op::kWake;
    command->connection = connection;
    command->channel = weak.lock();
    if (command->channel == nullptr) return;
    InboxCommand wake;
    wake.type = InboxCommand::Type::kFallback;
    wake.fallback = std::move(command);
    owner->post(std::move(wake));
  };
}

int Shard::carry(lws* wsi, SessionRequest request, const std::string& cors_origin) {
  if (ConnectionData::of(wsi) == nullptr) return -1;
  const bool stream =
      request.op == SessionRequest::Op::kAttach && request.kind == CarrierKind::kStream;
  request.channel = attach_carrier(wsi, stream, cors_origin);
  wake_owner_of(*request.channel, request.connection);
  const std::shared_ptr<ServiceInbox>& owner =
      shared_.shards[(request.connection - 1) % shared_.count]->inbox();
  InboxCommand command;
  command.type = InboxCommand::Type::kFallback;
  command.fallback = std::make_shared<SessionRequest>(std::move(request));
  if (!owner->post(std::move(command))) {
    write_http_reply(wsi, 503, "application/json", error_body("shutting_down", "shutting down"),
                     fallback_answer_headers(cors_origin));
    return finish_carrier(wsi);
  }
  return 0;  // the session's shard answers through the channel
}

int Shard::fallback_body(lws* wsi, const void* in, std::size_t len) {
  ConnectionData* data = ConnectionData::of(wsi);
  if (data == nullptr || !data->carrier) return 0;
  FallbackCarrier& c = *data->carrier;
  if (c.too_large || c.body.size() + len > c.max_body) {
    c.too_large = true;
    c.body.clear();
    c.body.shrink_to_fit();
    c.claim.release_bytes();
    return 0;
  }
  // This shard's share of what all POSTs may hold at once; past it, a POST is refused while its
  // body arrives (and the connection closed, since the rest of the body is not read).
  const std::size_t share =
      share_of(config_->fallback.post_bytes_in_flight, config_->fallback.max_post_bytes);
  if (post_bytes_in_flight_ + len > share) {
    WSB_LOG(kWarn) << "fallback POST from " << peer_address(wsi) << " refused: the POSTs in flight "
                   << "hold " << post_bytes_in_flight_ << " bytes of this thread's " << share
                   << " ([fallback] post_bytes_in_flight)";
    write_http_reply(wsi, 503, "application/json",
                     error_body("overloaded", "too many POST bytes in flight: try again"), [&] {
                       HeaderList h = fallback_answer_headers(c.cors_origin);
                       h.emplace_back("Retry-After:", "1");
                       h.emplace_back("Connection:", "close");
                       return h;
                     }());
    return -1;
  }
  c.body.append(static_cast<const char*>(in), len);
  c.claim.add_bytes(len);
  return 0;
}

int Shard::fallback_body_done(lws* wsi) {
  ConnectionData* data = ConnectionData::of(wsi);
  if (data == nullptr || !data->carrier) return -1;
  FallbackCarrier& c = *data->carrier;
  auto refuse = [&](unsigned status, std::string_view code, const std::string& message) {
    WSB_LOG(kInfo) << "fallback POST from " << peer_address(wsi) << ": " << status << " "
                   << message;
    write_http_reply(wsi, status, "application/json", error_body(code, message),
                     fallback_answer_headers(c.cors_origin));
    data->carrier.reset();
    return complete_http_transaction(wsi);
  };
  if (c.too_large) {
    return refuse(413, "too_large", "the body is over " + std::to_string(c.max_body) + " bytes");
  }
  // Checked here, so a malformed body never travels to the session's shard; applied there.
  fallback::BodyError error = fallback::BodyError::kNone;
  std::string message;
  const RouteConfig* route = nullptr;
  char* uri_ptr = nullptr;
  int uri_len = 0;
  if (lws_http_get_uri_and_method(wsi, &uri_ptr, &uri_len) >= 0) {
    if (auto path = parse_fallback_path(std::string_view(uri_ptr, uri_len))) {
      route = config_->find_route(path->route);
    }
  }
  if (route == nullptr) return refuse(404, "not_found", "the route is gone");
  if (!fallback::parse_body(c.body, {route->max_message_bytes, 10'000, true}, error, message)) {
    return error == fallback::BodyError::kTooLarge ? refuse(413, "too_large", message)
                                                   : refuse(400, "bad_request", message);
  }
  if (c.peer != nullptr) {
    const auto peer = c.peer;
    return forward_to_peer(wsi, *peer, false, c.cors_origin, c.body);
  }
  SessionRequest request;
  request.op = SessionRequest::Op::kPost;
  request.connection = c.target;
  request.body = std::move(c.body);
  return carry(wsi, std::move(request), c.cors_origin);
}

void Shard::carrier_closed(ConnectionData& data) {
  if (!data.carrier) return;
  carriers_.erase(data.carrier->key);
  if (data.carrier->channel) data.carrier->channel->abandon();
  data.carrier.reset();
}

}  // namespace wsbridge
