// The seam between a session and what carries it. A Session (identity, route, outbound queue,
// slow-consumer policy, rate limit, timers, close code) knows its peer only through a Transport:
// today an lws WebSocket (shard/websocket_transport.*); next wss://, WebSocket over HTTP/2, and
// the HTTP fallbacks (an SSE or long-polling stream down, POSTs up), which carry the same
// messages. Which transport carries a session is invisible to adapters.
//
// Inbound, a transport hands the session InboundFragments in order (a whole message is one
// fragment with first and final set); the shard reassembles them within the route's limits
// (Shard::on_fragment). Outbound, the session asks for its write turn (want_write) and, in it,
// the transport writes what the session's queue holds. Everything is called on the owning
// shard's thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace wsbridge {

struct InboundFragment {
  std::string_view bytes;
  bool binary = false;       // the message's kind (read from a message's first fragment)
  bool final = true;         // the last fragment of a message
  std::size_t expected = 0;  // bytes of the message known to follow this fragment (a hint)
};

class Transport {
 public:
  virtual ~Transport() = default;
  // "websocket" (the others will name themselves alike), for logs and metrics.
  virtual std::string_view kind() const = 0;
  // The peer's address as text.
  virtual const std::string& peer_address() const = 0;
  // Asks for the session's write turn as soon as the peer can take more bytes.
  virtual void want_write() = 0;
  // Inbound flow control: stop (false) or resume (true) reading from the peer.
  virtual void set_reading(bool on) = 0;
  // In the write turn that ends a session: the close the session decided (a close frame for a
  // WebSocket, the stream's last event for SSE). The connection ends after it.
  virtual void close(std::uint16_t code, std::string_view reason) = 0;
  // Ends the connection within `grace` whatever state it is in (0: at the next loop turn): a
  // peer that stopped reading, answering, or sending.
  virtual void drop_within(std::chrono::seconds grace) = 0;
  // The socket (the mask guard's findings name sockets), or -1 when it has none of its own.
  virtual int descriptor() const = 0;
};

}  // namespace wsbridge
