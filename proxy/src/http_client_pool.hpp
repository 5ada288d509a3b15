// The core's HttpClient: per backend, a bounded pool of keep-alive HTTP/1.1 connections driven by
// the libwebsockets service thread.
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

class PooledBackend;

class LwsHttpClient final : public HttpClient {
 public:
  LwsHttpClient();
  ~LwsHttpClient() override;

  std::shared_ptr<HttpBackend> backend(const HttpBackendOptions& options) override;

  // Service thread, once the context exists (creates one client vhost per backend). Throws
  // std::runtime_error when a vhost (e.g. its TLS context) cannot be created.
  void attach(lws_context* context);
  // Service thread, before the context is destroyed: fails every waiting and in-flight request
  // with kShutdown; requests made later fail the same way.
  void shutdown();
  // Service thread, now and then: closes keep-alive connections idle past their backend's
  // idle_timeout.
  void sweep();
  // Requests started and not yet answered, over all backends.
  std::size_t in_flight() const;

  static int lws_callback(lws* wsi, int reason, void* user, void* in, std::size_t len);

 private:
  std::vector<std::shared_ptr<PooledBackend>> backends_;
};

}  // namespace wsbridge
