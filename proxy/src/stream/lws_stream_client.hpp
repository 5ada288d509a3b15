// The core's StreamClient (wsbridge/stream_client.hpp): streams are lws RAW client connections on
// a client-only vhost of the shard that opens them, with TLS of our own on memory BIOs
// (tls_client_stream.hpp says why lws' own TLS cannot be used on RAW client connections).
//
// Endpoints belong to configurations; the per-shard vhosts belong to the process, so a stream
// opened under one configuration keeps running after a reload, as its WebSocket does.
#pragma once

#include <memory>
#include <mutex>

#include "wsbridge/stream_client.hpp"

struct lws;
struct lws_context;

namespace wsbridge {

class LwsStreamClient final : public StreamClient {
 public:
  // The process' one client (every configuration's routes hand out its endpoints).
  static LwsStreamClient& instance();

  std::shared_ptr<StreamEndpoint> endpoint(const StreamOptions& options) override;

  // Shard `shard`'s service thread, once its context exists: creates the shard's stream vhost.
  // Throws std::runtime_error when it cannot.
  void attach(lws_context* context, unsigned shard);
  // That shard's thread, before its context is destroyed: every stream still open there is cut
  // off from its handler (which hears nothing more) and closed with the context.
  void detach(unsigned shard);

  static int lws_callback(lws* wsi, int reason, void* user, void* in, std::size_t len);
};

}  // namespace wsbridge
