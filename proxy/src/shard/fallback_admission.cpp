// A fallback open on a route with an admission check (Adapter::admit, e.g. the http adapter's
// on_connect hook): as a WebSocket upgrade is held for the verdict (admission_hold.cpp), the open
// waits for it here. Nothing has to leave lws for that: the request simply is not answered yet,
// and its response channel is answered when the verdict comes (or 504 after the handshake
// timeout).
#include <nlohmann/json.hpp>

#include "fallback/session_request.hpp"
#include "shard/shard_parts.hpp"

namespace wsbridge {

namespace {

// The request's headers as lws parsed them (a held WebSocket upgrade gives its raw head instead).
HttpHeaders request_headers(lws* wsi) {
  HttpHeaders headers;
  for (int token = 0; token < WSI_TOKEN_COUNT; ++token) {
    const auto* name =
        reinterpret_cast<const char*>(lws_token_to_string(static_cast<lws_token_indexes>(token)));
    if (name == nullptr || *name == '\0' || *name == ':') continue;  // (h2 pseudo-headers)
    const std::string_view n(name);
    if (!n.ends_with(':')) continue;  // the request line's parts ("get ", "post ", ...)
    const auto index = static_cast<lws_token_indexes>(token);
    if (lws_hdr_total_length(wsi, index) <= 0) continue;
    headers.push_back(HttpHeader{std::string(n.substr(0, n.size() - 1)), header(wsi, index)});
  }
  return headers;
}

}  // namespace

int Shard::hold_fallback_open(lws* wsi, HeldOpen open, const std::string& cors_origin) {
  AdmissionRequest request;
  request.identity.user = open.decision.user;
  request.identity.claims = open.decision.claims;
  request.identity.auth_method = open.decision.method;
  request.identity.acl = open.decision.acl;
  request.identity.remote_address = open.peer;
  request.identity.route_path = open.route->path;
  request.identity.request_uri = open.uri;
  request.headers = request_headers(wsi);
  open.channel = attach_carrier(wsi, open.kind == fallback::CarrierKind::kStream, cors_origin);
  const std::uint64_t id = next_hold_id_++;
  const RouteConfig& route = *open.route;
  held_opens_.emplace(id, std::move(open));
  WSB_LOG(kDebug) << "holding a fallback open of " << route.path << " for its admission check";
  route.adapter->admit(std::move(request), [inbox = inbox_, id](AdmissionResult verdict) {
    auto admitted = std::make_shared<fallback::SessionRequest>();
    admitted->op = fallback::SessionRequest::Op::kAdmitted;
    admitted->connection = id;
    admitted->verdict = std::move(verdict);
    InboxCommand command;
    command.type = InboxCommand::Type::kFallback;
    command.fallback = std::move(admitted);
    inbox->post(std::move(command));
  });
  return 0;
}

void Shard::on_fallback_admitted(fallback::SessionRequest& request) {
  auto it = held_opens_.find(request.connection);
  if (it == held_opens_.end()) return;  // timed out, or shutting down: already answered
  HeldOpen open = std::move(it->second);
  held_opens_.erase(it);
  const AdmissionResult& v = *request.verdict;
  if (v.status < 200 || v.status > 299) {
    WSB_LOG(kInfo) << "fallback open of " << open.route->path
                   << " refused by the admission check: " << v.status;
    core_metrics::upgrade_refused("admission");
    open.channel->answer(
        v.status, "application/json",
        nlohmann::json{{"error", "admission"},
                       {"message", v.reason.empty() ? "refused by the admission check" : v.reason}}
            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  if (v.claims.is_object()) {
    for (const auto& [key, value] : v.claims.items()) open.decision.claims[key] = value;
  }
  start_fallback_session(std::move(open));
}

void Shard::expire_fallback_opens(SteadyClock::time_point now, bool all) {
  for (auto it = held_opens_.begin(); it != held_opens_.end();) {
    if (!all && now - it->second.since < config_->limits.handshake_timeout) {
      ++it;
      continue;
    }
    if (!all) {
      WSB_LOG(kWarn) << "admission check did not answer within the handshake timeout: 504";
      core_metrics::upgrade_refused("admission_timeout");
    }
    it->second.channel->answer(
        all ? 503 : 504, "application/json",
        all ? R"({"error":"shutting_down","message":"shutting down"})"
            : R"({"error":"admission_timeout","message":"the admission check did not answer in time"})");
    it = held_opens_.erase(it);
  }
}

}  // namespace wsbridge
