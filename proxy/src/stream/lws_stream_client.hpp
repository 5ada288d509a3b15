// The core's StreamClient (wsbridge/stream_client.hpp): streams are lws RAW client connections on
// a client-only vhost of the shard that opens them, with TLS of our own on memory BIOs
// (tls_client_stream.hpp says why lws' own TLS cannot be used on RAW client connections).
//
// Endpoints belong to configurations; the per-shard vhosts belong to the process, so a stream
// opened under one configuration keeps running after a reload, as its WebSocket does.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "wsbridge/stream_client.hpp"

struct lws;
struct lws_context;
struct ssl_st;

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

  // A browser's connection taken from lws by the reverse proxy (reverse_proxy/): socket `fd`,
  // with `ssl` (a session whose handshake is done) or null for plain TCP, driven from now on as
  // a stream of the calling shard (a service thread). Takes both; `name` is for messages.
  // Null when lws cannot adopt it (the socket is closed then).
  std::unique_ptr<Stream> adopt(int fd, ssl_st* ssl, StreamHandler& handler,
                                const std::string& name);
  // The socket and session of an adopted stream, taken back so that lws may have the
  // connection again; the stream ends silently (its descriptor number keeps a placeholder).
  struct Released {
    int fd = -1;
    ssl_st* ssl = nullptr;
  };
  // nullopt when it cannot now: the stream ended, lws still holds unsent bytes of it (try again
  // later), or descriptors ran out (`busy` tells the second case).
  std::optional<Released> release(Stream& stream, bool& busy);
  // release() would succeed now, with no TLS session in the stream (plain TCP).
  bool releasable_plain(Stream& stream) const;

  static int lws_callback(lws* wsi, int reason, void* user, void* in, std::size_t len);
};

}  // namespace wsbridge
