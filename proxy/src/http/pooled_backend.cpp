// One backend's pool on one shard: its request queue (timeouts, deferred answers, the bound on
// waiting requests) and the handing of requests to connections.
#include "http/pooled_backend.hpp"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "wsbridge/header_rules.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::http_pool {

PooledBackend::PooledBackend(HttpBackendOptions options, http1::Url url)
    : options_(std::move(options)), url_(std::move(url)), metrics_(options_.url) {
  if (url_.tls) tls_context_ = std::make_unique<TlsClientContext>(options_.ca_file);
  if (!is_numeric_address(url_.host)) {
    std::string error;
    std::string address = resolve_host(url_.host, error);
    if (address.empty()) {
      WSB_LOG(kWarn) << "cannot resolve backend host " << url_.host << " (" << error
                     << "); will retry";
    }
    resolver_ = std::make_unique<Resolver>(url_.host, std::move(address));
  }
}

void PooledBackend::request(HttpRequest request, HttpCallback done) {
  auto p = std::make_unique<PendingRequest>();
  p->backend = this;
  p->method = request.method;
  p->repeatable = http1::is_idempotent_method(request.method) &&
                  std::none_of(request.headers.begin(), request.headers.end(),
                               [](const HttpHeader& h) { return http::overrides_method(h.name); });
  p->done = std::move(done);
  p->started = Clock::now();
  const std::string wire = http1::serialize_request(request, url_);
  p->wire.reserve(LWS_PRE + wire.size());
  p->wire.assign(LWS_PRE, '\0');
  p->wire += wire;
  PendingRequest* raw = p.get();
  pending_.push_back(std::move(p));
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  if (context_ == nullptr || stopped_) {
    defer(raw, HttpResult{HttpFailure::kShutdown, "the server is stopping", {}});
    return;
  }
  schedule(raw, options_.timeout);
  if (waiting_.size() >= options_.max_waiting) {
    defer(raw, HttpResult{HttpFailure::kOverloaded,
                          "more than " + std::to_string(options_.max_waiting) +
                              " requests are waiting for this backend",
                          {}});
    return;
  }
  waiting_.push_back(raw);
  in_request_call_ = true;
  pump();
  in_request_call_ = false;
}

void PooledBackend::attach(lws_context* context, const lws_protocols* protocols) {
  context_ = context;
  lws_context_creation_info info{};
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  vhost_name_ = "http-client-" + options_.url;
  info.vhost_name = vhost_name_.c_str();
  vhost_ = lws_create_vhost(context, &info);
  if (vhost_ == nullptr) {
    throw std::runtime_error("cannot set up the HTTP client for " + options_.url);
  }
}

void PooledBackend::shutdown() {
  if (stopped_) return;
  stopped_ = true;
  // Fail everything still owed an answer, then let lws close the sockets with the context.
  std::vector<PendingRequest*> owed;
  for (auto& p : pending_) owed.push_back(p.get());
  for (PendingRequest* p : owed) {
    finish(p, HttpResult{HttpFailure::kShutdown, "the server is stopping", {}});
  }
  for (auto& c : connections_list_) {
    c->closing = true;
    if (c->wsi != nullptr) lws_set_opaque_user_data(c->wsi, nullptr);
  }
  connections_list_.clear();
  metrics_.connections->set(0);
  // Its vhost goes with it (lws closes what is still bound to it): each reload makes new pools,
  // and the vhosts of the replaced ones stayed in the context for good, ~900 bytes each per
  // backend and service thread at every reload (a hostile probe's 2,000 reloads: +4 MB).
  if (vhost_ != nullptr) {
    lws_vhost_destroy(vhost_);
    vhost_ = nullptr;
  }
}

void PooledBackend::schedule(PendingRequest* p, std::chrono::milliseconds delay) {
  lws_sul_schedule(
      context_, 0, &p->sul,
      [](lws_sorted_usec_list_t* sul) {
        auto* request = reinterpret_cast<PendingRequest*>(sul);
        request->backend->on_timer(request);
      },
      std::chrono::duration_cast<std::chrono::microseconds>(delay).count());
}

void PooledBackend::defer(PendingRequest* p, HttpResult result) {
  p->deferred = std::move(result);
  if (context_ == nullptr) {
    // Never attached (no service loop): nothing will run the timer. Answer now; this only
    // happens in tests that build adapters without a server.
    finish(p, std::move(*p->deferred));
    return;
  }
  schedule(p, std::chrono::milliseconds(0));
}

void PooledBackend::on_timer(PendingRequest* p) {
  if (p->deferred) {
    finish(p, std::move(*p->deferred));
    return;
  }
  const auto waited =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - p->started);
  if (p->connection != nullptr) {
    // The socket's state is unknown now: it cannot carry another request.
    close_connection(p->connection);
  }
  finish(p, HttpResult{HttpFailure::kTimeout,
                       "no response from " + options_.url + " within " +
                           std::to_string(waited.count()) + " ms",
                       {}});
}

void PooledBackend::finish(PendingRequest* p, HttpResult result) {
  lws_sul_cancel(&p->sul);
  if (p->connection != nullptr) {
    p->connection->current = nullptr;
    p->connection = nullptr;
  }
  std::erase(waiting_, p);
  if (result.failure == HttpFailure::kNone) {
    metrics_.latency->observe(std::chrono::duration<double>(Clock::now() - p->started).count());
  }
  core_metrics::backend_request(
      options_.url, result.failure == HttpFailure::kNone ? "ok" : to_string(result.failure));
  HttpCallback done = std::move(p->done);
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (it->get() == p) {
      pending_.erase(it);
      in_flight_.fetch_sub(1, std::memory_order_relaxed);
      break;
    }
  }
  if (done) {
    try {
      done(std::move(result));
    } catch (const std::exception& e) {
      WSB_LOG(kError) << "an HTTP response handler threw: " << e.what();
    }
  }
}

void PooledBackend::pump() {
  while (!waiting_.empty() && !stopped_) {
    PoolConnection* idle = nullptr;
    std::size_t open = 0;
    for (auto& c : connections_list_) {
      if (c->closing) continue;
      ++open;
      if (idle == nullptr && c->connected && c->current == nullptr) idle = c.get();
    }
    PendingRequest* p = waiting_.front();
    if (idle != nullptr) {
      waiting_.pop_front();
      assign(idle, p);
      send_request(idle);
      continue;
    }
    // Connections still connecting already carry a request each; open one more if allowed.
    if (open >= options_.max_connections) return;
    waiting_.pop_front();
    if (!connect(p)) return;
  }
}

void PooledBackend::assign(PoolConnection* c, PendingRequest* p) {
  c->current = p;
  c->received_bytes = false;
  c->parser =
      std::make_unique<http1::ResponseParser>(options_.max_response_bytes, p->method == "HEAD");
  p->connection = c;
}

void PooledBackend::fail_unavailable(PendingRequest* p, std::string detail) {
  if (resolver_) resolver_->refresh();
  HttpResult result{HttpFailure::kUnavailable, std::move(detail), {}};
  if (in_request_call_ || connecting_ != nullptr) {
    defer(p, std::move(result));
  } else {
    finish(p, std::move(result));
  }
}

void PooledBackend::expire_idle() {
  const auto now = Clock::now();
  for (auto& c : connections_list_) {
    if (c->connected && c->current == nullptr && !c->closing &&
        now - c->idle_since >= options_.idle_timeout) {
      close_connection(c.get());
    }
  }
}

}  // namespace wsbridge::http_pool
