// Raw byte streams to TCP (and TLS) servers for adapters, driven by the core on the service
// thread of the shard that opens them: e.g. one upstream MQTT connection per browser in the mqtt
// adapter's pass-through mode. Nothing here blocks and no thread is started per stream.
//
// An adapter asks the core's StreamClient (RouteContext::stream_client) for an endpoint at
// configuration time (the address is resolved there, then kept fresh off the service thread) and
// opens streams to it from its service-thread callbacks. A stream and its handler belong to the
// shard that opened it: every call and every callback happens on that thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace wsbridge {

struct StreamOptions {
  // tcp://host:port or ssl://host:port (mqtt:// and mqtts:// are accepted as aliases).
  std::string url;
  // ssl:// only: trust these CAs instead of the system's; present this client certificate.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool verify_server = true;  // check the certificate chain and the host name
  // From connect() until the TCP (and TLS) handshake is done.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
};

// What a stream tells its owner. Never called from inside a Stream method (a call that fails at
// once reports on the next loop iteration), and never again once the stream was closed or
// destroyed by its owner.
class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // TCP connected (and, for ssl://, the TLS handshake done and the certificate checked).
  virtual void on_connected() = 0;
  // Bytes from the server (decrypted), in order.
  virtual void on_data(std::string_view bytes) = 0;
  // What write() buffered beyond the socket has been sent (after a write returned false).
  virtual void on_drained() {}
  // A timer set with Stream::set_timer went off.
  virtual void on_timer() {}
  // The stream ended: the server closed it, connecting failed or timed out, TLS failed. `reason`
  // is for logs and error messages. The stream does nothing more afterwards.
  virtual void on_closed(std::string_view reason) = 0;
};

class Stream {
 public:
  // Destroying a stream closes it (without a callback).
  virtual ~Stream() = default;
  // Queues bytes for the server (before on_connected they wait). false: more than the stream's
  // buffer high-water mark is waiting now; slow down until on_drained.
  virtual bool write(std::string_view bytes) = 0;
  // Bytes written and not yet taken by the socket.
  virtual std::size_t buffered() const = 0;
  // Inbound flow control: while paused, nothing is read from the server (TCP slows it down).
  virtual void pause_reading(bool paused) = 0;
  // Calls on_timer once after `delay` (replacing a timer set before); 0 cancels it.
  virtual void set_timer(std::chrono::milliseconds delay) = 0;
  // Sends what is buffered, then closes. No callback follows.
  virtual void close() = 0;
};

class StreamEndpoint {
 public:
  virtual ~StreamEndpoint() = default;
  // Service thread only. Opens a stream whose events go to `handler`, which must outlive the
  // stream (or close it first).
  virtual std::unique_ptr<Stream> connect(StreamHandler& handler) = 0;
  virtual const std::string& url() const = 0;
};

class StreamClient {
 public:
  virtual ~StreamClient() = default;
  // At configuration time. Throws std::invalid_argument with a message for a bad URL or an
  // unreadable CA, certificate or key file.
  virtual std::shared_ptr<StreamEndpoint> endpoint(const StreamOptions& options) = 0;
};

}  // namespace wsbridge
