#include "http_adapter.hpp"

#include "wsbridge/text.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <cstdio>

#include "wsbridge/adapter_registry.hpp"
#include "wsbridge/bounded_json.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::http {

namespace {

std::string random_prefix() {
  unsigned char bytes[4] = {};
  if (RAND_bytes(bytes, sizeof bytes) != 1) return "wsb";
  char text[9];
  std::snprintf(text, sizeof text, "%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2], bytes[3]);
  return text;
}

// A message's Content-Type follows its frame: JSON text, other text, or bytes. nlohmann's
// accept() ends the text at a NUL byte and skips a leading UTF-8 BOM: "{}\0junk" and a BOM
// before JSON are not JSON to a backend's parser (RFC 8259), so they go as text.
std::string content_type_of(const Frame& frame) {
  if (frame.is_binary()) return "application/octet-stream";
  const std::string_view text = frame.payload();
  const bool json = text.find('\0') == std::string_view::npos &&
                    !text.starts_with("\xEF\xBB\xBF") && nlohmann::json::accept(text);
  return json ? "application/json" : "text/plain; charset=utf-8";
}

// What a waiting request keeps of what the client sent.
std::size_t bytes_of(const std::variant<Frame, RpcCall>& work) {
  if (const auto* frame = std::get_if<Frame>(&work)) return frame->payload().size();
  const auto& call = std::get<RpcCall>(work);
  return call.request.body.size() + call.request.target.size();
}

}  // namespace

HttpAdapter::HttpAdapter(HttpRouteConfig config, std::shared_ptr<HttpBackend> backend,
                         std::shared_ptr<HttpBackend> connect_hook,
                         std::shared_ptr<HttpBackend> disconnect_hook, unsigned shards)
    : config_(std::move(config)),
      policy_{config_.methods, config_.paths, config_.client_headers},
      backend_(std::move(backend)),
      connect_hook_(std::move(connect_hook)),
      disconnect_hook_(std::move(disconnect_hook)),
      request_id_prefix_(random_prefix()),
      shards_(std::max(1u, shards)),
      max_concurrent_per_shard_((config_.max_concurrent + shards_.size() - 1) / shards_.size()) {}

void HttpAdapter::on_open(const std::shared_ptr<Connection>& connection) {
  auto state = std::make_shared<ConnState>();
  state->connection = connection;
  here().states[connection->id()] = std::move(state);
}

void HttpAdapter::on_message(const std::shared_ptr<Connection>& connection, Frame message) {
  auto& states = here().states;
  auto it = states.find(connection->id());
  if (it == states.end()) return;
  const std::shared_ptr<ConnState>& state = it->second;
  if (config_.mode == Mode::kRpc) {
    auto parsed = parse_rpc_request(message, policy_);
    if (auto* refusal = std::get_if<RpcRefusal>(&parsed)) {
      reply(*state, error_frame(refusal->id, refusal->code, refusal->message));
      update_flow(*state);
      return;
    }
    state->waiting.emplace_back(std::move(std::get<RpcCall>(parsed)));
  } else {
    state->waiting.emplace_back(std::move(message));
  }
  state->waiting_bytes += bytes_of(state->waiting.back());
  outstanding_.fetch_add(1, std::memory_order_relaxed);
  pump(state);
  update_flow(*state);
}

void HttpAdapter::on_rate_limited(const std::shared_ptr<Connection>& connection,
                                  const Frame& message) {
  nlohmann::json id = nullptr;
  if (config_.mode == Mode::kRpc && message.is_text()) {
    auto doc = bounded_json::parse(message.payload());
    if (doc.is_object() && doc.contains("id") && (doc["id"].is_string() || doc["id"].is_number()))
      id = doc["id"];
  }
  connection->send(error_frame(id, "rate_limited", "too many messages: slow down"));
}

void HttpAdapter::on_close(const std::shared_ptr<Connection>& connection, const CloseInfo& info) {
  auto& states = here().states;
  auto it = states.find(connection->id());
  if (it != states.end()) {
    ConnState& state = *it->second;
    state.open = false;
    // Not sent yet: nobody would read the answers. Requests in flight finish on their own.
    outstanding_.fetch_sub(state.waiting.size(), std::memory_order_relaxed);
    state.waiting.clear();
    states.erase(it);
  }
  if (!disconnect_hook_) return;
  const Identity& who = connection->identity();
  nlohmann::json body = {{"connection", global_connection_id(connection->id())},
                         {"route", config_.path},
                         {"user", who.user},
                         {"claims", who.claims},
                         {"remote_address", who.remote_address},
                         {"code", info.code},
                         {"reason", info.reason},
                         {"by_peer", info.by_peer}};
  HttpRequest request;
  request.method = "POST";
  request.headers = {{"Content-Type", "application/json"},
                     {"X-Wsbridge-Connection", global_connection_id(connection->id())}};
  request.body = body.dump(-1, ' ', false, kDumpReplace);
  const ConnectionId id = connection->id();
  disconnect_hook_->request(std::move(request), [id, url = disconnect_hook_->url()](HttpResult r) {
    if (r.failure != HttpFailure::kNone) {
      WSB_LOG(kWarn) << "on_disconnect " << url << " for conn " << id << " failed: " << r.detail;
    } else if (r.response.status / 100 != 2) {
      WSB_LOG(kWarn) << "on_disconnect " << url << " for conn " << id << " answered "
                     << r.response.status;
    }
  });
}

void HttpAdapter::on_drained(const std::shared_ptr<Connection>& connection) {
  auto& states = here().states;
  auto it = states.find(connection->id());
  if (it == states.end()) return;
  const std::shared_ptr<ConnState> state = it->second;
  state->answers_backed_up = false;
  pump(state);
  update_flow(*state);
}

void HttpAdapter::admit(AdmissionRequest request, AdmissionCallback done) {
  const Identity& who = request.identity;
  nlohmann::json headers = nlohmann::json::object();
  for (const auto& h : request.headers) {
    if (!hook_may_see_header(h.name)) continue;
    const std::string name = text::lower(h.name);
    auto it = headers.find(name);
    headers[name] = it == headers.end() ? h.value : it->get<std::string>() + ", " + h.value;
  }
  nlohmann::json body = {{"route", config_.path},
                         {"path", who.request_uri},
                         {"remote_address", who.remote_address},
                         {"user", who.user},
                         {"auth_method", who.auth_method},
                         {"claims", who.claims},
                         {"headers", std::move(headers)}};
  HttpRequest hook;
  hook.method = "POST";
  hook.headers = {{"Content-Type", "application/json"}, {"X-Forwarded-For", who.remote_address}};
  hook.body = body.dump(-1, ' ', false, kDumpReplace);
  connect_hook_->request(
      std::move(hook), [done = std::move(done), url = connect_hook_->url()](HttpResult r) {
        AdmissionResult verdict;
        if (r.failure != HttpFailure::kNone) {
          WSB_LOG(kWarn) << "on_connect " << url << " failed: " << r.detail;
          verdict.status = r.failure == HttpFailure::kTimeout       ? 504
                           : r.failure == HttpFailure::kUnavailable ? 503
                                                                    : 502;
          verdict.reason = "the connect hook failed: " + std::string(to_string(r.failure));
          done(std::move(verdict));
          return;
        }
        const int status = r.response.status;
        auto doc = bounded_json::parse(r.response.body);
        if (status >= 200 && status <= 299) {
          if (doc.is_object() && doc.contains("claims") && doc["claims"].is_object()) {
            verdict.claims = doc["claims"];
          }
          done(std::move(verdict));
          return;
        }
        // 4xx and 5xx are the backend's own answer; anything else (3xx, 1xx) is a broken hook.
        verdict.status = status >= 400 && status <= 599 ? static_cast<unsigned>(status) : 502;
        if (doc.is_object()) {
          for (const char* key : {"message", "reason", "error"}) {
            if (doc.contains(key) && doc[key].is_string()) {
              verdict.reason = doc[key].get<std::string>();
              break;
            }
          }
        }
        if (verdict.reason.empty()) {
          verdict.reason = "refused by the connect hook (" + std::to_string(status) + ")";
        }
        done(std::move(verdict));
      });
}

void HttpAdapter::pump(const std::shared_ptr<ConnState>& state) {
  while (state->open && !state->answers_backed_up && !state->waiting.empty() &&
         state->in_flight < config_.max_in_flight) {
    ShardState& shard = here();
    if (shard.route_in_flight >= max_concurrent_per_shard_) {
      if (!state->queued_for_slot) {
        state->queued_for_slot = true;
        shard.slot_waiters.push_back(state);
      }
      return;
    }
    Work work = std::move(state->waiting.front());
    state->waiting.pop_front();
    state->waiting_bytes -= bytes_of(work);
    start(state, std::move(work));
    // On the wire now, the core's HTTP client counts it (in_flight below; counted twice for a
    // moment rather than not at all).
    outstanding_.fetch_sub(1, std::memory_order_relaxed);
  }
}

void HttpAdapter::update_flow(ConnState& state) {
  // Stop reading from a client that is ahead of the backend; start again at half. What waits also
  // counts against the server's bound on clients' input held ([limits] inbound_bytes_in_flight):
  // past it the client is paused the same way (what it sent was accepted and is kept) until what
  // it has waiting fits again, so max_queued messages of max_message_bytes from every connection
  // cannot add up beyond what the server was given.
  // A client that does not read its answers is paused too (and nothing more is asked of the
  // backend for it), so answers cannot pile up at the speed it sends requests.
  const bool fits = state.connection->hold_inbound(state.waiting_bytes, InboundHold::kWaiting);
  if (!state.paused &&
      (state.waiting.size() >= config_.max_queued || !fits || state.answers_backed_up)) {
    state.paused = true;
    state.connection->pause_reading(true);
  } else if (state.paused && fits && !state.answers_backed_up &&
             state.waiting.size() <= config_.max_queued / 2) {
    state.paused = false;
    state.connection->pause_reading(false);
  }
}

HttpHeaders HttpAdapter::identity_headers(ConnState& state) {
  const Connection& c = *state.connection;
  const Identity& who = c.identity();
  HttpHeaders h;
  h.push_back({"X-Request-Id", request_id_prefix_ + "-" + std::to_string(c.id()) + "-" +
                                   std::to_string(state.next_request++)});
  h.push_back({"X-Wsbridge-Connection", global_connection_id(c.id())});
  if (!who.user.empty() && safe_header_value(who.user)) h.push_back({"X-Wsbridge-User", who.user});
  h.push_back({"X-Wsbridge-Route", config_.path});
  h.push_back({"X-Forwarded-For", who.remote_address});
  return h;
}

void HttpAdapter::start(const std::shared_ptr<ConnState>& state, Work work) {
  HttpRequest request;
  request.headers = identity_headers(*state);
  std::optional<FrameKind> message_kind;
  nlohmann::json rpc_id;
  if (auto* message = std::get_if<Frame>(&work)) {
    request.method = "POST";
    request.headers.push_back({"Content-Type", content_type_of(*message)});
    request.body = std::string(message->payload());
    message_kind = message->kind();
  } else {
    RpcCall& call = std::get<RpcCall>(work);
    rpc_id = std::move(call.id);
    request.method = std::move(call.request.method);
    request.target = std::move(call.request.target);
    request.body = std::move(call.request.body);
    for (auto& h : call.request.headers) {
      // The route's configured headers win over a client's of the same name, in any spelling
      // ("X_Api_Key" is X-Api-Key to a WSGI backend).
      const std::string name = canonical_header_name(h.name);
      if (std::none_of(
              config_.static_headers.begin(), config_.static_headers.end(),
              [&](const HttpHeader& s) { return canonical_header_name(s.name) == name; })) {
        request.headers.push_back(std::move(h));
      }
    }
  }
  for (const auto& h : config_.static_headers) request.headers.push_back(h);
  ++state->in_flight;
  ++here().route_in_flight;
  backend_->request(std::move(request),
                    [this, state, message_kind, rpc_id = std::move(rpc_id)](HttpResult result) {
                      if (state->open) {
                        if (message_kind) {
                          answer_message(*state, *message_kind, std::move(result));
                        } else {
                          answer_rpc(*state, rpc_id, std::move(result));
                        }
                      }
                      finished(state);
                    });
}

void HttpAdapter::finished(const std::shared_ptr<ConnState>& state) {
  --state->in_flight;
  ShardState& shard = here();
  --shard.route_in_flight;
  // A freed route slot goes to the connection that waited longest, then this one goes on.
  while (shard.route_in_flight < max_concurrent_per_shard_ && !shard.slot_waiters.empty()) {
    auto waiter = shard.slot_waiters.front().lock();
    shard.slot_waiters.pop_front();
    if (!waiter) continue;
    waiter->queued_for_slot = false;
    pump(waiter);
    update_flow(*waiter);
  }
  pump(state);
  if (state->open) update_flow(*state);
}

void HttpAdapter::answer_message(ConnState& state, FrameKind kind, HttpResult result) {
  if (result.failure != HttpFailure::kNone) {
    reply(state, error_frame(nullptr, to_string(result.failure), result.detail));
    return;
  }
  const int status = result.response.status;
  if (status < 200 || status > 299) {
    reply(state, error_frame(nullptr, "upstream_status",
                             "the backend answered " + std::to_string(status), status));
    return;
  }
  std::string& body = result.response.body;
  if (body.empty()) return;
  if (kind == FrameKind::kText && !valid_utf8(body)) {
    reply(state, error_frame(nullptr, "bad_response",
                             "the backend's answer to a text message is not valid UTF-8"));
    return;
  }
  reply(state, Frame(kind, body));
}

void HttpAdapter::answer_rpc(ConnState& state, const nlohmann::json& id, HttpResult result) {
  if (result.failure != HttpFailure::kNone) {
    reply(state, error_frame(id, to_string(result.failure), result.detail));
    return;
  }
  reply(state, response_frame(id, result.response));
}

void HttpAdapter::reply(ConnState& state, Frame frame) {
  if (state.connection->send(std::move(frame)) == SendResult::kQueuedOverHighWater) {
    state.answers_backed_up = true;  // (update_flow pauses the client; on_drained resumes it)
  }
}

namespace {

class HttpKind final : public AdapterKind {
 public:
  std::unique_ptr<Adapter> create_route(ConfigTable& options,
                                        const RouteContext& context) override {
    HttpRouteConfig config =
        HttpRouteConfig::from_route(options, context.path, context.config_dir.string());
    auto backend_for = [&](const HttpBackendOptions& o,
                           std::string_view key) -> std::shared_ptr<HttpBackend> {
      try {
        return context.http_client->backend(o);
      } catch (const std::invalid_argument& e) {
        options.fail_at(key, std::string(key) + ": " + e.what());
      }
    };
    auto backend = backend_for(config.backend, "backend");
    auto connect = config.on_connect ? backend_for(*config.on_connect, "on_connect") : nullptr;
    auto disconnect =
        config.on_disconnect ? backend_for(*config.on_disconnect, "on_disconnect") : nullptr;
    auto adapter =
        std::make_unique<HttpAdapter>(std::move(config), std::move(backend), std::move(connect),
                                      std::move(disconnect), context.shards);
    adapters_.push_back(adapter.get());
    return adapter;
  }

  // Requests queued in the adapters; those on the wire are counted by the core's HTTP client.
  std::size_t in_flight() const override {
    std::size_t n = 0;
    for (const HttpAdapter* a : adapters_) n += a->outstanding();
    return n;
  }

 private:
  std::vector<const HttpAdapter*> adapters_;
};

}  // namespace

}  // namespace wsbridge::http

void wsbridge_register_http(wsbridge::AdapterRegistry& registry) {
  registry.add("http", [] { return std::make_unique<wsbridge::http::HttpKind>(); });
}
