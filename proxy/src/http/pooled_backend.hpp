// Private to the core's HTTP client (http_client_pool.cpp, pooled_backend.cpp,
// pool_connection.cpp): one backend's pool of connections on one shard, and the requests it
// carries.
#pragma once

#include <libwebsockets.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>

#include "http/backend_resolver.hpp"
#include "http/http1.hpp"
#include "http/http_client_pool.hpp"
#include "http/tls_client_stream.hpp"
#include "metrics/core_metrics.hpp"
#include "wsbridge/http_client.hpp"
#include "wsbridge/metrics.hpp"

namespace wsbridge::http_pool {

// The lws protocol (and vhost protocol list entry) of the pool's raw client connections.
inline constexpr const char* kClientProtocol = "wsbridge-http-client";
using Clock = std::chrono::steady_clock;

class PooledBackend;
struct PendingRequest;

// One socket to the backend; carries at most one request at a time (no pipelining).
struct PoolConnection {
  PooledBackend* backend = nullptr;
  lws* wsi = nullptr;
  PendingRequest* current = nullptr;
  bool connected = false;
  bool reused = false;          // carried a request before the current one
  bool received_bytes = false;  // for the current request
  bool closing = false;
  Clock::time_point idle_since{};
  std::unique_ptr<http1::ResponseParser> parser;
  std::unique_ptr<TlsClientStream> tls;  // https backends
  std::string out;                       // bytes for the socket, written at the next WRITEABLE
};

struct PendingRequest {
  lws_sorted_usec_list_t sul{};  // first member: the timer callback casts back from it
  PooledBackend* backend = nullptr;
  std::string method;
  std::string wire;  // LWS_PRE bytes of headroom, then the serialized request
  HttpCallback done;
  Clock::time_point started{};
  PoolConnection* connection = nullptr;
  bool retried = false;
  // It may go again on a new connection if its first one closes unanswered (may_retry): an
  // idempotent method, and no header asking the backend to take it as another method.
  bool repeatable = false;
  std::optional<HttpResult> deferred;  // a result to deliver from the timer (not re-entrantly)
};

class PooledBackend final : public HttpBackend, public std::enable_shared_from_this<PooledBackend> {
 public:
  PooledBackend(HttpBackendOptions options, http1::Url url);
  ~PooledBackend() override { shutdown(); }

  const HttpBackendOptions& options() const { return options_; }
  const std::string& url() const override { return options_.url; }
  const std::string& base_path() const override { return url_.path; }

  void request(HttpRequest request, HttpCallback done) override;
  // Service thread.
  void attach(lws_context* context, const lws_protocols* protocols);
  void shutdown();
  // Any thread (the shutdown drain of every shard asks).
  std::size_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  int on_event(lws* wsi, PoolConnection* c, int reason, void* in, std::size_t len);

 private:
  void schedule(PendingRequest* p, std::chrono::milliseconds delay);
  // Delivers `result` from the next loop iteration (request() must not call back re-entrantly).
  void defer(PendingRequest* p, HttpResult result);
  void on_timer(PendingRequest* p);
  // Answers `p` (exactly once) and forgets it.
  void finish(PendingRequest* p, HttpResult result);
  // Hands waiting requests to idle connections, opening new ones within the pool's bound.
  void pump();
  void assign(PoolConnection* c, PendingRequest* p);
  bool connect(PendingRequest* p);
  // Puts the current request on the wire (through TLS when the backend is https).
  void send_request(PoolConnection* c);
  // Whether `p`, sent on `c`, goes once more on a new connection if `c` closes now: `c` was
  // reused (the backend may have closed it as idle just then), nothing of an answer came, it was
  // not retried yet, and it may be applied twice (PendingRequest::repeatable).
  static bool may_retry(const PoolConnection* c, const PendingRequest* p);
  static void release_wire(PendingRequest* p);
  // Bytes of the backend's response (decrypted when https).
  void on_plain_bytes(PoolConnection* c, const char* data, std::size_t len);
  void fail_tls(PoolConnection* c);
  void fail_unavailable(PendingRequest* p, std::string detail);
  bool owns(const PoolConnection* c) const;
  void close_connection(PoolConnection* c);
  // Forgets `c` (freed here): nothing may point at it afterwards, its request included.
  void remove_connection(PoolConnection* c);
  void complete_response(PoolConnection* c);
  void expire_idle();

  friend class ::wsbridge::LwsHttpClient;

  const HttpBackendOptions options_;
  const http1::Url url_;
  std::string vhost_name_;
  lws_context* context_ = nullptr;
  lws_vhost* vhost_ = nullptr;
  bool stopped_ = false;
  bool in_request_call_ = false;
  PoolConnection* connecting_ = nullptr;
  std::list<std::unique_ptr<PendingRequest>> pending_;
  std::atomic<std::size_t> in_flight_{0};  // pending_.size(), for other threads
  std::deque<PendingRequest*> waiting_;
  std::list<std::unique_ptr<PoolConnection>> connections_list_;
  std::unique_ptr<Resolver> resolver_;
  std::unique_ptr<TlsClientContext> tls_context_;
  BackendMetrics metrics_;
};

}  // namespace wsbridge::http_pool
