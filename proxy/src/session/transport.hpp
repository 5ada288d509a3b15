// The seam between a session and what carries it. A Session (identity, route, outbound queue,
// slow-consumer policy, rate limit, timers, close code) knows its peer only through a Transport:
// today an lws WebSocket (shard/websocket_transport.*); next wss://, WebSocket over HTTP/2, and
// the HTTP fallbacks (an SSE or long-polling stream down, POSTs up), which carry the same
// messages. Which transport carries a session is invisible to adapters.
//
// Inbound, a transport hands the session InboundFragments in order (a whole message is one
// fragment with first and final set); the shard reassembles them within the route's limits
// (Shard::on_fragment). Outbound, the session asks for its write turn (want_write) and, in it,
// the transport writes from the front of the session's queue (write), sends a keepalive ping or
// the close. How frames become bytes (WebSocket framing written by us or by lws, an SSE event) is
// the transport's. Everything is called on the owning shard's thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "session/frame_queue.hpp"

namespace wsbridge {

struct InboundFragment {
  std::string_view bytes;
  bool binary = false;       // the message's kind (read from a message's first fragment)
  bool final = true;         // the last fragment of a message
  std::size_t expected = 0;  // bytes of the message known to follow this fragment (a hint)
  // Read from a message's first fragment: the message is compressed (permessage-deflate), and
  // is to be inflated once whole.
  bool compressed = false;
};

// What one write turn did, for the session's queue accounting and counters.
struct WriteTurn {
  std::size_t frames_done = 0;     // frames handed over completely
  std::size_t payload_done = 0;    // their payload bytes
  std::size_t dequeued_bytes = 0;  // Frame::size() bytes taken out of the queue (done or started)
  bool peer_took_bytes = false;    // the peer took bytes while its reading was held: it is alive
  bool failed = false;             // the connection is gone, or cut inside a frame
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
  // In the write turn: frames from the front of `queue`, about `budget` bytes at most, taking out
  // of it those it handed over or started. A frame the peer took part of leaves the queue (no
  // drop policy may cut it) and its rest goes first in the next turn (mid_frame).
  virtual WriteTurn write(FrameQueue& queue, std::size_t budget) = 0;
  // Whether write() may run now, outside the write turn want_write() asks for: the data path
  // then writes at the end of the loop turn without asking the event loop for POLLOUT (a system
  // call each way on epoll). Checked right before each such write.
  virtual bool can_write_now() const { return false; }
  // The write turn want_write() asked for has begun (before write(), ping() or close()).
  virtual void write_turn_began() {}
  // A frame is partly written: nothing else (a ping, a close) may go out before its rest.
  virtual bool mid_frame() const = 0;
  // Reading is held until such a frame is out (Connection::heard_while_held), asked by no one.
  virtual bool reading_held() const { return false; }
  // What of that frame the peer has not taken yet: output out of the session's queue (so not in
  // its queued bytes) that still waits in memory for the peer to read it.
  virtual std::size_t unsent_bytes() const { return 0; }
  // In the write turn: a keepalive ping, which the peer answers. false: the connection is gone.
  virtual bool ping() = 0;
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
