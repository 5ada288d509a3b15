// LwsHttpClient: each backend as one pool per shard (pooled_backend.hpp), and the lws protocol
// that drives the pools' connections.
#include "http/http_client_pool.hpp"

#include <libwebsockets.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "http/http1.hpp"
#include "http/pooled_backend.hpp"
#include "server/this_shard.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge {

using http_pool::PoolConnection;
using http_pool::PooledBackend;

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
    {http_pool::kClientProtocol, client_protocol_callback, 0, 0, 0, nullptr, 0},
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
