// Private to the stream client (lws_stream_client.cpp, stream_link.cpp): one stream's state on
// its shard, shared by the adapter's handle and the shard's set of live streams, so that neither
// the handle nor lws outlives what it points at, whichever goes first.
#pragma once

#include <libwebsockets.h>

#include <chrono>
#include <memory>
#include <string>
#include <unordered_set>

#include "http/backend_resolver.hpp"
#include "http/tls_client_stream.hpp"
#include "wsbridge/stream_client.hpp"

namespace wsbridge::stream {

inline constexpr const char* kProtocol = "wsbridge-stream";
// Past this many buffered bytes write() says "slow down"; on_drained comes below half of it.
inline constexpr std::size_t kHighWaterBytes = 256 * 1024;
// Bytes handed to lws per writeable turn.
inline constexpr std::size_t kWriteChunkBytes = 64 * 1024;
// A stream closed with bytes still buffered gets this long to send them; a browser's connection
// the reverse proxy closes after a response, as long as a slow browser may take to read its end.
inline constexpr unsigned kFlushOnCloseSeconds = 5;
inline constexpr unsigned kClientFlushOnCloseSeconds = 60;
// After the owner's close, once all it wrote is out: how long the half-closed socket is read
// (and what comes discarded) waiting for the peer to close its side (a lingering close).
inline constexpr unsigned kLingerSeconds = 5;

// What every stream to one server shares: the parsed URL, the address kept fresh, TLS settings.
struct EndpointState {
  std::string url;
  std::string host;
  unsigned port = 0;
  bool tls = false;
  std::chrono::milliseconds connect_timeout{};
  std::string first_address;                      // numeric hosts, or resolved at configuration
  std::unique_ptr<http_pool::Resolver> resolver;  // named hosts: kept fresh off the loop
  std::unique_ptr<TlsClientContext> tls_context;
  std::string address() const { return resolver ? resolver->address() : first_address; }
};

struct ShardStreams;
struct StreamLink;

// An lws timer that knows its stream (the sul first, so the callback can cast back to it).
struct LinkTimer {
  lws_sorted_usec_list_t sul{};
  StreamLink* link = nullptr;
  static StreamLink* of(lws_sorted_usec_list_t* sul) {
    return reinterpret_cast<LinkTimer*>(sul)->link;
  }
};

struct StreamLink : std::enable_shared_from_this<StreamLink> {
  LinkTimer timer{{}, this};          // Stream::set_timer
  LinkTimer connect_timer{{}, this};  // the connect timeout, or a deferred failure report
  std::shared_ptr<const EndpointState> endpoint;
  ShardStreams* shard = nullptr;
  lws* wsi = nullptr;
  StreamHandler* handler = nullptr;  // null once the owner let go, or after on_closed
  std::unique_ptr<TlsClientStream> tls;
  std::string out;             // bytes for the socket (ciphertext on ssl://)
  std::size_t out_offset = 0;  // how much of `out` lws has taken
  std::string early;           // plaintext written before the TLS handshake finished
  std::string failure;         // a failure to report from the next loop turn
  bool connected = false;      // TCP up
  bool ready = false;          // TCP up and TLS done: on_connected was called
  bool paused = false;
  bool want_drained = false;
  bool flushing_close = false;  // the owner closed with bytes buffered: send them, then close
  bool lingering = false;       // all sent and half-closed: reading until the peer closes
  unsigned flush_seconds = kFlushOnCloseSeconds;
  bool ended = false;  // the socket is gone (or cut loose): nothing more happens

  ~StreamLink();
  std::size_t buffered() const { return out.size() - out_offset + early.size(); }

  // lws events, on the shard's thread.
  void on_connected_socket();
  void on_rx(const char* data, std::size_t len);
  void on_writeable();
  void on_socket_closed(const std::string& why);

  // Handle operations.
  bool write(std::string_view bytes);
  void pause(bool paused);
  void set_timer(std::chrono::milliseconds delay);
  void close_by_owner();
  // A flushing close, once the link is up: what is buffered goes, then the link closes (at the
  // latest flush_seconds later).
  void start_flush();
  // The owner closed and everything it wrote is out: half-close and read until the peer closes
  // (within kLingerSeconds), so that what the peer still sends meets an open socket.
  void linger();

  // Ends the stream now: the socket is closed without waiting, and the handler (if any) hears
  // `why` from the next loop turn unless `silently`.
  void fail(const std::string& why, bool silently = false);
  void report_failure();
  void request_write();
  // Sends what it can of `bytes` straight away when nothing waits before them (taking it off
  // the front); false when the socket failed (the link ended).
  bool send_now(std::string_view& bytes);
  void forget();  // cuts the link loose from its socket and shard set
};

// The live streams of one shard.
struct ShardStreams {
  lws_context* context = nullptr;
  lws_vhost* vhost = nullptr;
  std::unordered_set<std::shared_ptr<StreamLink>> links;
};

}  // namespace wsbridge::stream
