// The core's HttpClient: per backend and shard, a bounded pool of keep-alive HTTP/1.1 connections
// driven by that shard's libwebsockets service thread.
//
// Why not lws' own HTTP client: in lws 4.1.6 an h1 client connection is only reused for requests
// queued while another is in flight (its "pipeline" queue); an idle connection is never kept, so
// every quiet period costs a new TCP (and TLS) handshake per request, and the response size limit
// and body handling would be lws' too. So the sockets are lws "RAW" client connections (lws does
// the connect, TLS and certificate verification, and the polling) and the HTTP/1.1 framing and
// the pool are ours (http1.hpp).
//
// Host names are resolved off the service thread (lws 4.1.6 in Debian has no asynchronous DNS
// and would call getaddrinfo() inside the loop): at configuration time, then again by a small
// resolver thread per named backend.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "wsbridge/http_client.hpp"

struct lws;
struct lws_context;

namespace wsbridge {

class ShardedBackend;

class LwsHttpClient final : public HttpClient {
 public:
  LwsHttpClient();
  ~LwsHttpClient() override;

  // Before any backend is made: the number of shards. Each backend gets one pool per shard,
  // driven by that shard's loop; a request is served by the pool of the shard that makes it
  // (this_shard.hpp). max_connections and max_waiting are split evenly among the pools.
  void set_shards(unsigned shards);
  unsigned shards() const { return shards_; }

  std::shared_ptr<HttpBackend> backend(const HttpBackendOptions& options) override;

  // Shard `shard`'s service thread, once its context exists (creates one client vhost per
  // backend). Throws std::runtime_error when a vhost (e.g. its TLS context) cannot be created.
  void attach(lws_context* context, unsigned shard);
  // That shard's thread, before its context is destroyed: fails every waiting and in-flight
  // request of its pools with kShutdown; requests made there later fail the same way.
  void shutdown(unsigned shard);
  // That shard's thread, now and then: closes keep-alive connections idle past their backend's
  // idle_timeout.
  void sweep(unsigned shard);
  // Requests started and not yet answered, over all backends and shards. Any thread.
  std::size_t in_flight() const;

  static int lws_callback(lws* wsi, int reason, void* user, void* in, std::size_t len);

 private:
  unsigned shards_ = 1;
  std::vector<std::shared_ptr<ShardedBackend>> backends_;
};

}  // namespace wsbridge
