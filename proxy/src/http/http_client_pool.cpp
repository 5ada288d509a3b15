#include "http/http_client_pool.hpp"

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <list>
#include <stdexcept>
#include <stop_token>
#include <thread>

#include "http/http1.hpp"
#include "http/tls_client_stream.hpp"
#include "server/this_shard.hpp"
#include "wsbridge/log.hpp"
#include "wsbridge/metrics.hpp"

namespace wsbridge {

namespace {

constexpr const char* kClientProtocol = "wsbridge-http-client";
using Clock = std::chrono::steady_clock;

bool is_numeric_address(const std::string& host) {
  in_addr v4{};
  in6_addr v6{};
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 || inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

// getaddrinfo() for the first stream address, as numeric text; "" and `error` when none.
std::string resolve_host(const std::string& host, std::string& error) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0) {
    error = gai_strerror(rc);
    return "";
  }
  std::string address;
  for (const addrinfo* a = found; a != nullptr && address.empty(); a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) ==
        0) {
      address = text;
    }
  }
  freeaddrinfo(found);
  if (address.empty()) error = "no usable address";
  return address;
}

// Keeps a named backend's address fresh without ever resolving on the service thread: resolves
// once a minute, or soon after a failed connect, on its own thread.
class Resolver {
 public:
  Resolver(std::string host, std::string first_address)
      : host_(std::move(host)), address_(std::move(first_address)) {
    thread_ = std::jthread([this](const std::stop_token& stop) { loop(stop); });
  }
  std::string address() const {
    std::lock_guard lock(mutex_);
    return address_;
  }
  void refresh() {
    {
      std::lock_guard lock(mutex_);
      wanted_ = true;
    }
    wake_.notify_all();
  }

 private:
  void loop(const std::stop_token& stop) {
    std::unique_lock lock(mutex_);
    while (!stop.stop_requested()) {
      wake_.wait_for(lock, stop, std::chrono::seconds(60), [this] { return wanted_; });
      if (stop.stop_requested()) break;
      wanted_ = false;
      lock.unlock();
      std::string error;
      std::string address = resolve_host(host_, error);
      lock.lock();
      if (!address.empty()) {
        address_ = std::move(address);
      } else {
        WSB_LOG(kWarn) << "cannot resolve backend host " << host_ << ": " << error;
      }
      // At most one lookup every two seconds, however often connects fail.
      wake_.wait_for(lock, stop, std::chrono::seconds(2), [] { return false; });
    }
  }

  const std::string host_;
  mutable std::mutex mutex_;
  std::condition_variable_any wake_;
  std::string address_;
  bool wanted_ = false;
  std::jthread thread_;  // last: stopped and joined before the members it uses go
};

}  // namespace

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
  std::optional<HttpResult> deferred;  // a result to deliver from the timer (not re-entrantly)
};

class PooledBackend final : public HttpBackend, public std::enable_shared_from_this<PooledBackend> {
 public:
  PooledBackend(HttpBackendOptions options, http1::Url url)
      : options_(std::move(options)), url_(std::move(url)) {
    auto& r = metrics::Registry::global();
    const metrics::Labels l = {{"backend", options_.url}};
    latency_ =
        &r.histogram("wsbridge_http_backend_request_seconds",
                     "time from sending a request to its backend to the complete response", l);
    connections_ = &r.gauge("wsbridge_http_backend_connections",
                            "connections open to the backend (idle or busy)", l);
    connects_ =
        &r.counter("wsbridge_http_backend_connects_total",
                   "connections opened to the backend (keep-alive reuse keeps this low)", l);
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
  ~PooledBackend() override { shutdown(); }

  const HttpBackendOptions& options() const { return options_; }
  const std::string& url() const override { return options_.url; }
  const std::string& base_path() const override { return url_.path; }

  void request(HttpRequest request, HttpCallback done) override {
    auto p = std::make_unique<PendingRequest>();
    p->backend = this;
    p->method = request.method;
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

  // Service thread.
  void attach(lws_context* context, const lws_protocols* protocols) {
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

  void shutdown() {
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
    connections_->set(0);
  }

  // Any thread (the shutdown drain of every shard asks).
  std::size_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

  int on_event(lws* wsi, PoolConnection* c, int reason, void* in, std::size_t len);

 private:
  void schedule(PendingRequest* p, std::chrono::milliseconds delay) {
    lws_sul_schedule(
        context_, 0, &p->sul,
        [](lws_sorted_usec_list_t* sul) {
          auto* request = reinterpret_cast<PendingRequest*>(sul);
          request->backend->on_timer(request);
        },
        std::chrono::duration_cast<std::chrono::microseconds>(delay).count());
  }

  // Delivers `result` from the next loop iteration (request() must not call back re-entrantly).
  void defer(PendingRequest* p, HttpResult result) {
    p->deferred = std::move(result);
    if (context_ == nullptr) {
      // Never attached (no service loop): nothing will run the timer. Answer now; this only
      // happens in tests that build adapters without a server.
      finish(p, std::move(*p->deferred));
      return;
    }
    schedule(p, std::chrono::milliseconds(0));
  }

  void on_timer(PendingRequest* p) {
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

  // Answers `p` (exactly once) and forgets it.
  void finish(PendingRequest* p, HttpResult result) {
    lws_sul_cancel(&p->sul);
    if (p->connection != nullptr) {
      p->connection->current = nullptr;
      p->connection = nullptr;
    }
    std::erase(waiting_, p);
    if (result.failure == HttpFailure::kNone) {
      latency_->observe(std::chrono::duration<double>(Clock::now() - p->started).count());
    }
    metrics::Registry::global()
        .counter("wsbridge_http_backend_requests_total",
                 "requests to HTTP backends, by outcome (ok: any HTTP status)",
                 {{"backend", options_.url},
                  {"outcome", result.failure == HttpFailure::kNone
                                  ? std::string("ok")
                                  : std::string(to_string(result.failure))}})
        .inc();
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

  // Hands waiting requests to idle connections, opening new ones within the pool's bound.
  void pump() {
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

  void assign(PoolConnection* c, PendingRequest* p) {
    c->current = p;
    c->received_bytes = false;
    c->parser =
        std::make_unique<http1::ResponseParser>(options_.max_response_bytes, p->method == "HEAD");
    p->connection = c;
  }

  bool connect(PendingRequest* p) {
    auto owned = std::make_unique<PoolConnection>();
    PoolConnection* c = owned.get();
    c->backend = this;
    connections_list_.push_back(std::move(owned));
    connections_->add(1);
    connects_->inc();
    assign(c, p);
    const std::string address = resolver_ ? resolver_->address() : url_.host;
    if (address.empty()) {
      remove_connection(c);
      fail_unavailable(p, "cannot resolve " + url_.host);
      return true;
    }
    lws_client_connect_info i{};
    i.context = context_;
    i.vhost = vhost_;
    i.address = address.c_str();
    i.port = url_.port;
    i.host = url_.host.c_str();  // TLS: SNI and the certificate's name
    i.origin = url_.host.c_str();
    i.path = "/";
    i.method = "RAW";
    i.ssl_connection = 0;  // TLS is ours (tls_client_stream.hpp)
    i.protocol = kClientProtocol;
    i.local_protocol_name = kClientProtocol;
    i.opaque_user_data = c;
    // No i.pwsi: lws writes through it when the connection fails, possibly after we let go of
    // the PoolConnection. Callbacks bring the wsi instead.
    connecting_ = c;
    lws* wsi = lws_client_connect_via_info(&i);
    connecting_ = nullptr;
    if (wsi != nullptr && owns(c)) c->wsi = wsi;
    if (wsi == nullptr) {
      // lws may already have reported the error (and forgotten the connection) on this stack.
      if (owns(c)) {
        remove_connection(c);
        fail_unavailable(p, "cannot connect to " + options_.url);
      }
      return true;
    }
    return true;
  }

  // Puts the current request on the wire (through TLS when the backend is https).
  void send_request(PoolConnection* c) {
    PendingRequest* p = c->current;
    if (p == nullptr || p->wire.size() <= LWS_PRE || c->closing) return;
    if (c->tls && c->tls->advance() != TlsClientStream::State::kReady) return;  // after it
    const std::string_view plain = std::string_view(p->wire).substr(LWS_PRE);
    if (c->tls) {
      if (!c->tls->write(plain)) return;
      c->out += c->tls->take_output();
    } else {
      c->out += plain;
    }
    p->wire.clear();
    p->wire.shrink_to_fit();
    if (c->wsi != nullptr) lws_callback_on_writable(c->wsi);
  }

  // Bytes of the backend's response (decrypted when https).
  void on_plain_bytes(PoolConnection* c, const char* data, std::size_t len) {
    PendingRequest* p = c->current;
    if (p == nullptr || !c->parser) {
      // Bytes nobody asked for (or after a timeout): this connection is not reusable.
      close_connection(c);
      return;
    }
    c->received_bytes = true;
    const auto state = c->parser->feed(data, len);
    if (state == http1::ResponseParser::State::kComplete) {
      complete_response(c);
      pump();
    } else if (state == http1::ResponseParser::State::kError) {
      const bool too_large = c->parser->too_large();
      const std::string why = c->parser->error();
      close_connection(c);
      finish(p, HttpResult{too_large ? HttpFailure::kTooLarge : HttpFailure::kBadResponse,
                           options_.url + ": " + why,
                           {}});
      pump();
    }
  }

  void fail_tls(PoolConnection* c) {
    const std::string why = c->tls->error();
    PendingRequest* p = c->current;
    close_connection(c);
    if (p != nullptr) {
      p->connection = nullptr;
      c->current = nullptr;
      fail_unavailable(p, options_.url + ": " + why);
    }
  }

  void fail_unavailable(PendingRequest* p, std::string detail) {
    if (resolver_) resolver_->refresh();
    HttpResult result{HttpFailure::kUnavailable, std::move(detail), {}};
    if (in_request_call_ || connecting_ != nullptr) {
      defer(p, std::move(result));
    } else {
      finish(p, std::move(result));
    }
  }

  bool owns(const PoolConnection* c) const {
    for (const auto& owned : connections_list_) {
      if (owned.get() == c) return true;
    }
    return false;
  }

  void close_connection(PoolConnection* c) {
    if (c->closing) return;
    c->closing = true;
    if (c->wsi != nullptr) {
      lws_set_timeout(c->wsi, static_cast<pending_timeout>(PENDING_TIMEOUT_USER_OK),
                      LWS_TO_KILL_ASYNC);
    }
  }

  // Forgets `c` (freed here): nothing may point at it afterwards, its request included.
  void remove_connection(PoolConnection* c) {
    if (c->wsi != nullptr) lws_set_opaque_user_data(c->wsi, nullptr);
    if (c->current != nullptr) {
      c->current->connection = nullptr;
      c->current = nullptr;
    }
    for (auto it = connections_list_.begin(); it != connections_list_.end(); ++it) {
      if (it->get() == c) {
        connections_list_.erase(it);
        connections_->add(-1);
        return;
      }
    }
  }

  void complete_response(PoolConnection* c) {
    PendingRequest* p = c->current;
    const bool keep = c->parser->keep_alive() && !c->closing;
    HttpResult result;
    result.response = c->parser->take();
    c->parser.reset();
    c->reused = true;
    c->idle_since = Clock::now();
    if (!keep) close_connection(c);
    finish(p, std::move(result));
  }

  void expire_idle() {
    const auto now = Clock::now();
    for (auto& c : connections_list_) {
      if (c->connected && c->current == nullptr && !c->closing &&
          now - c->idle_since >= options_.idle_timeout) {
        close_connection(c.get());
      }
    }
  }

  friend class LwsHttpClient;

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
  metrics::Histogram* latency_ = nullptr;
  metrics::Gauge* connections_ = nullptr;
  metrics::Counter* connects_ = nullptr;
};

int PooledBackend::on_event(lws* wsi, PoolConnection* c, int reason_int, void* in,
                            std::size_t len) {
  (void)len;
  switch (static_cast<lws_callback_reasons>(reason_int)) {
    case LWS_CALLBACK_RAW_CONNECTED:
      c->connected = true;
      c->idle_since = Clock::now();
      if (tls_context_) {
        c->tls = std::make_unique<TlsClientStream>(*tls_context_, url_.host);
        if (c->tls->advance() == TlsClientStream::State::kFailed) {
          fail_tls(c);
          return 0;
        }
        c->out += c->tls->take_output();  // the ClientHello
        lws_callback_on_writable(wsi);
      } else if (c->current != nullptr) {
        send_request(c);
      }
      if (c->current == nullptr) pump();  // its request timed out while connecting
      return 0;
    case LWS_CALLBACK_RAW_WRITEABLE: {
      if (c->out.empty() || c->closing) return 0;
      std::string buffer(LWS_PRE, '\0');
      buffer += c->out;
      c->out.clear();
      const std::size_t size = buffer.size() - LWS_PRE;
      // lws keeps whatever the kernel does not take and sends it before the next WRITEABLE.
      if (lws_write(wsi, reinterpret_cast<unsigned char*>(buffer.data()) + LWS_PRE, size,
                    LWS_WRITE_RAW) < static_cast<int>(size)) {
        return -1;
      }
      return 0;
    }
    case LWS_CALLBACK_RAW_RX: {
      if (!c->tls) {
        on_plain_bytes(c, static_cast<const char*>(in), len);
        return 0;
      }
      c->tls->feed(static_cast<const char*>(in), len);
      const bool ready = c->tls->advance() == TlsClientStream::State::kReady;
      std::string plain;
      if (c->tls->advance() == TlsClientStream::State::kFailed || !c->tls->read(plain)) {
        fail_tls(c);
        return 0;
      }
      c->out += c->tls->take_output();
      if (!c->out.empty()) lws_callback_on_writable(wsi);
      if (ready && c->current != nullptr) send_request(c);  // e.g. right after the handshake
      if (!plain.empty()) on_plain_bytes(c, plain.data(), plain.size());
      return 0;
    }
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
      const std::string why = in != nullptr ? static_cast<const char*>(in) : "connection failed";
      PendingRequest* p = c->current;
      lws_set_opaque_user_data(wsi, nullptr);
      c->wsi = nullptr;
      remove_connection(c);
      if (p != nullptr) {
        p->connection = nullptr;
        fail_unavailable(p, "cannot connect to " + options_.url + ": " + why);
      }
      if (connecting_ == nullptr) pump();
      return 0;
    }
    case LWS_CALLBACK_RAW_CLOSE: {
      PendingRequest* p = c->current;
      lws_set_opaque_user_data(wsi, nullptr);
      c->wsi = nullptr;
      if (p != nullptr) {
        p->connection = nullptr;
        c->current = nullptr;
        auto state = c->parser ? c->parser->finish() : http1::ResponseParser::State::kError;
        if (state == http1::ResponseParser::State::kComplete) {
          HttpResult result;
          result.response = c->parser->take();
          finish(p, std::move(result));
        } else if (!c->connected) {
          fail_unavailable(p, "cannot connect to " + options_.url);
        } else if (c->reused && !c->received_bytes && !p->retried &&
                   (p->method == "GET" || p->method == "HEAD" || p->method == "OPTIONS" ||
                    p->method == "PUT" || p->method == "DELETE")) {
          // The backend closed an idle keep-alive connection just as it was reused: try an
          // idempotent request once more on a fresh connection.
          p->retried = true;
          waiting_.push_front(p);
        } else {
          finish(p, HttpResult{HttpFailure::kBadResponse,
                               options_.url + ": " +
                                   (c->parser ? c->parser->error() : "connection closed"),
                               {}});
        }
      }
      remove_connection(c);
      pump();
      return 0;
    }
    default:
      return 0;
  }
}

// One pool per shard, each driven by its shard's loop: a request goes to the pool of the shard it
// is made on, and is answered there. The connection and queue limits are split among the pools.
class ShardedBackend final : public HttpBackend {
 public:
  ShardedBackend(const HttpBackendOptions& options, const http1::Url& url, unsigned shards)
      : options_(options) {
    HttpBackendOptions share = options;
    share.max_connections = (options.max_connections + shards - 1) / shards;
    share.max_waiting = (options.max_waiting + shards - 1) / shards;
    for (unsigned i = 0; i < shards; ++i) {
      pools_.push_back(std::make_shared<PooledBackend>(share, url));
    }
  }
  void request(HttpRequest request, HttpCallback done) override {
    pools_[std::min<std::size_t>(this_shard::index(), pools_.size() - 1)]->request(
        std::move(request), std::move(done));
  }
  const std::string& url() const override { return options_.url; }
  const std::string& base_path() const override { return pools_.front()->base_path(); }
  const HttpBackendOptions& options() const { return options_; }
  PooledBackend* pool(unsigned shard) {
    return shard < pools_.size() ? pools_[shard].get() : nullptr;
  }
  std::size_t in_flight() const {
    std::size_t n = 0;
    for (const auto& pool : pools_) n += pool->in_flight();
    return n;
  }

 private:
  const HttpBackendOptions options_;
  std::vector<std::shared_ptr<PooledBackend>> pools_;
};

LwsHttpClient::LwsHttpClient() = default;
LwsHttpClient::~LwsHttpClient() = default;

void LwsHttpClient::set_shards(unsigned shards) {
  if (!backends_.empty()) throw std::logic_error("set_shards after backends were made");
  shards_ = std::max(1u, shards);
}

std::shared_ptr<HttpBackend> LwsHttpClient::backend(const HttpBackendOptions& options) {
  for (const auto& b : backends_) {
    const HttpBackendOptions& o = b->options();
    if (o.url == options.url && o.max_connections == options.max_connections &&
        o.idle_timeout == options.idle_timeout && o.max_waiting == options.max_waiting &&
        o.timeout == options.timeout && o.max_response_bytes == options.max_response_bytes &&
        o.ca_file == options.ca_file) {
      return b;
    }
  }
  std::string error;
  auto url = http1::parse_url(options.url, error);
  if (!url) throw std::invalid_argument(error);
  if (!options.ca_file.empty() && !std::filesystem::is_regular_file(options.ca_file)) {
    throw std::invalid_argument("CA file " + options.ca_file + " does not exist");
  }
  if (options.max_connections == 0) throw std::invalid_argument("the pool needs a connection");
  std::shared_ptr<ShardedBackend> backend;
  try {
    backend = std::make_shared<ShardedBackend>(options, *url, shards_);
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(e.what());  // e.g. a CA file OpenSSL cannot read
  }
  backends_.push_back(backend);
  return backend;
}

namespace {
int client_protocol_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in,
                             std::size_t len) {
  return LwsHttpClient::lws_callback(wsi, static_cast<int>(reason), user, in, len);
}
const lws_protocols kClientProtocols[] = {
    {kClientProtocol, client_protocol_callback, 0, 0, 0, nullptr, 0},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0},
};
}  // namespace

void LwsHttpClient::attach(lws_context* context, unsigned shard) {
  for (auto& b : backends_) {
    if (PooledBackend* pool = b->pool(shard)) pool->attach(context, kClientProtocols);
  }
}

void LwsHttpClient::shutdown(unsigned shard) {
  for (auto& b : backends_) {
    if (PooledBackend* pool = b->pool(shard)) pool->shutdown();
  }
}

void LwsHttpClient::sweep(unsigned shard) {
  for (auto& b : backends_) {
    if (PooledBackend* pool = b->pool(shard)) pool->expire_idle();
  }
}

std::size_t LwsHttpClient::in_flight() const {
  std::size_t n = 0;
  for (const auto& b : backends_) n += b->in_flight();
  return n;
}

int LwsHttpClient::lws_callback(lws* wsi, int reason, void* user, void* in, std::size_t len) {
  auto* c = static_cast<PoolConnection*>(lws_get_opaque_user_data(wsi));
  if (c == nullptr || c->backend == nullptr) {
    // A connection the pool let go (shut down, or closing): nothing more to do for it.
    const auto r = static_cast<lws_callback_reasons>(reason);
    return r == LWS_CALLBACK_RAW_RX || r == LWS_CALLBACK_RAW_WRITEABLE ? -1 : 0;
  }
  if (c->wsi == nullptr) c->wsi = wsi;
  (void)user;
  try {
    return c->backend->on_event(wsi, c, reason, in, len);
  } catch (const std::exception& e) {
    WSB_LOG(kError) << "HTTP client error: " << e.what();
    return -1;
  }
}

}  // namespace wsbridge
