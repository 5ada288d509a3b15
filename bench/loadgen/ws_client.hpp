// A minimal epoll WebSocket client for load generation (RFC 6455 client side: HTTP upgrade with
// Sec-WebSocket-Accept check, masked frames out, unmasked frames in, fragmentation, ping/pong,
// close, and the receive side of permessage-deflate when offered), over TCP or TLS (wss://,
// OpenSSL, ws_tls.cpp). Deliberately independent of libwebsockets, so it does not share its bugs.
// One Loop per process, single-threaded; connections are plain structs owned by the caller.
#pragma once

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ws_deflate.hpp"

namespace bench {

std::uint64_t now_ns();  // CLOCK_MONOTONIC, shared by every process on the host

struct Url {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string path = "/";
  bool tls = false;  // wss://
  // "ws" also takes "wss://" (tls = true).
  static bool parse(std::string_view text, std::string_view scheme, Url& out);
  std::string host_port() const { return host + ":" + std::to_string(port); }
};

// What can go wrong with a connection, counted per kind.
struct Errors {
  std::uint64_t connect = 0;       // connect() failed (refused, no ports, ...)
  std::uint64_t handshake = 0;     // no 101, or a wrong Sec-WebSocket-Accept
  std::uint64_t closed = 0;        // the server closed or reset an open connection
  std::uint64_t error_frames = 0;  // {"type":"error"} frames
  std::uint64_t protocol = 0;      // malformed frames from the server
  std::uint64_t timeout = 0;       // a phase did not complete in time
  std::uint64_t corrupt = 0;       // a delivered payload is not the one published
  std::uint64_t tls = 0;           // the TLS handshake failed
  std::map<int, std::uint64_t> close_codes;
  std::uint64_t total() const {
    return connect + handshake + closed + error_frames + protocol + timeout + corrupt + tls;
  }
};

// kHttpDown, kHttpUp: --transport sse|poll|sio, a session's downstream (stream or polls) and its
// POSTs (child_http.cpp).
enum class Role : std::uint8_t {
  kWebSocket,
  kControl,
  kMqtt,
  kHttpListen,
  kHttpConn,
  kStdin,
  kHttpDown,
  kHttpUp
};
// kTls: TCP connected, TLS handshake under way (wss:// only); kHandshaking: the HTTP upgrade.
enum class State : std::uint8_t { kIdle, kConnecting, kTls, kHandshaking, kOpen, kClosed };
// What the upgrade response said about permessage-deflate.
enum class Deflate : std::uint8_t { kNone, kContext, kNoContext };

struct Conn {
  int fd = -1;
  Role role = Role::kWebSocket;
  State state = State::kIdle;
  bool epollout = false;
  bool close_sent = false;
  bool we_closed = false;  // our close frame went first: the server's answer is not an error
  std::uint32_t index = 0;
  SSL* ssl = nullptr;  // wss:// only
  std::uint8_t frag_op = 0;
  bool frag_compressed = false;  // the fragmented message in `frag` had RSV1 on its first frame
  Deflate deflate = Deflate::kNone;
  // The connection's own inflater, only when the server keeps its compression context between
  // messages (then each connection's stream depends on all its earlier messages).
  std::unique_ptr<Inflater> inflater;
  std::uint32_t tag = 0;  // free for the mode (e.g. which kind of WebSocket)
  std::string in;
  // --mqtt: MQTT bytes of a packet not complete yet (a bridge may split packets across frames,
  // or across TCP reads on the broker connection), and where the MQTT session stands.
  std::string mq;
  std::uint8_t mq_state = 0;
  std::uint16_t next_packet_id = 0;
  std::string out;
  std::size_t out_off = 0;
  std::string frag;
  std::string accept;  // expected Sec-WebSocket-Accept while handshaking
  // Fan-out receiver bookkeeping.
  std::int64_t max_seq = -1;
  std::uint64_t unique = 0;
  std::uint64_t dups = 0;
  std::uint64_t received = 0;  // message frames of any kind the mode counts (idle mode)
  std::uint64_t mark = 0;      // `received` when the idle mode last published
  bool ready = false;          // subscribed (ack received) or otherwise ready for the measurement
  // --transport sse|poll|sio (child_http.cpp): the session's token (wsbridge) or sid (Engine.IO),
  // the last message id received, the HTTP response being read, and (the up connection) what
  // waits to be POSTed.
  std::string token;
  std::string post;              // up: records (wsbridge) or packets (Engine.IO) not sent yet
  std::uint64_t post_count = 0;  // up: records in `post`
  std::uint64_t sent_count = 0;  // up: records in the POST in flight
  std::uint64_t next_seq = 1;    // up: wsbridge's sequence number of the next record
  std::uint64_t last_id = 0;
  std::int64_t body_left = -1;  // of the response being read; -1: until the end of the stream
  // An event stream in chunks (wsbridge on a keep-alive connection): where the decoder stands
  // (kChunkSize, kChunkEnd, kLastChunkEnd, or the bytes left of a chunk) and the bytes decoded.
  bool chunked = false;
  std::int64_t chunk_left = 0;
  std::string dechunked;
  int status = 0;
  std::uint8_t http = 0;  // child_http.cpp's Http state
  bool keep_alive = false;
  bool busy = false;  // a request is in flight on this connection
  // RPC bookkeeping: (request id, send time) of requests in flight.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> inflight;
  std::uint64_t next_id = 1;
};

class Loop {
 public:
  struct Handler {
    virtual ~Handler() = default;
    virtual void on_open(Conn& c) = 0;  // upgrade completed
    virtual void on_text(Conn& c, const char* data, std::size_t len, std::uint64_t t) = 0;
    virtual void on_binary(Conn&, const char* /*data*/, std::size_t /*len*/, std::uint64_t /*t*/) {}
    virtual void on_closed(Conn& c, bool was_open) = 0;     // fd already closed
    virtual void on_fd(Conn&, std::uint32_t /*events*/) {}  // non-WebSocket roles
  };

  explicit Loop(Handler& handler);
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Source addresses cycle over 127.0.0.1 .. 127.0.0.K (0 or 1: no bind), for more than one
  // ephemeral port range's worth of connections and for per-address server limits.
  void set_source_addresses(unsigned k) { source_addresses_ = k; }
  // Offers "permessage-deflate; client_max_window_bits" in every upgrade request.
  void set_offer_deflate(bool offer) { offer_deflate_ = offer; }
  // With server_no_context_takeover a message's inflated text depends only on its compressed
  // bytes: the same bytes (a server that compresses once for every subscriber) are then inflated
  // once per process and compared byte for byte. Saves the load generator about 3 us of zlib per
  // delivered message, so that on a small machine it does not become the limit before the
  // server. Off by default: every client then inflates every message, as a browser does.
  // Without server_no_context_takeover every connection inflates with its own stream, always.
  void set_inflate_memo(bool memo) { memo_on_ = memo; }
  // Offers this Sec-WebSocket-Protocol in every upgrade request (empty: none), e.g. "mqtt" as
  // mqtt.js and Paho do.
  void set_subprotocol(std::string name) { subprotocol_ = std::move(name); }

  // Starts a non-blocking connect (then the TLS handshake for wss://) and the upgrade to
  // url.path. False (and counted) on failure.
  bool connect_ws(Conn& c, const Url& url);
  // Watches a foreign fd (control socket, MQTT, HTTP) and reports its events through on_fd.
  void watch(Conn& c, std::uint32_t events);
  void set_events(Conn& c, std::uint32_t events);

  // Appends one masked text frame to the connection's output; flush() writes it.
  void queue_text(Conn& c, std::string_view payload) { queue_frame(c, 0x1, payload); }
  void queue_frame(Conn& c, std::uint8_t opcode, std::string_view payload);
  void send_text(Conn& c, std::string_view payload) {
    queue_text(c, payload);
    flush(c);
  }
  // Writes what is queued; arms EPOLLOUT for the rest. False when the connection failed.
  bool flush(Conn& c);
  // Closes the socket now (RST-free: SO_LINGER is not used, but no close handshake either
  // unless graceful), reporting on_closed.
  void close(Conn& c, bool graceful);
  // Sends a close frame and leaves the connection open until the server answers it (or closes):
  // the end of a WebSocket session as a client does it, for the handshake mode.
  void close_after_reply(Conn& c);

  // One epoll_wait (timeout in ms, -1 forever) and dispatch. Returns the number of events.
  int poll(int timeout_ms);

  Errors errors;
  std::uint64_t messages_in = 0;
  // permessage-deflate: connections that negotiated it (of which with
  // server_no_context_takeover), compressed messages received, and their bytes on the wire
  // (payload) and once inflated.
  std::uint64_t deflate_conns = 0;
  std::uint64_t deflate_no_context = 0;
  std::uint64_t compressed_in = 0;
  std::uint64_t compressed_wire_bytes = 0;
  std::uint64_t compressed_plain_bytes = 0;
  std::uint64_t memo_hits = 0;       // compressed messages not inflated again (set_inflate_memo)
  std::uint64_t tls_handshakes = 0;  // completed TLS handshakes
  std::uint64_t tls_resumed = 0;     // of which resumed a session (never, by design: ws_tls.cpp)
  std::string tls_version;           // of the last handshake, e.g. "TLSv1.3"
  std::string tls_cipher;
  bool shutting_down = false;  // closes are expected: not counted as errors

 private:
  void on_ws_event(Conn& c, std::uint32_t events);
  void on_readable(Conn& c);
  bool parse_handshake(Conn& c);
  // Parses frames from data; returns bytes consumed, or SIZE_MAX on a protocol error.
  std::size_t parse_frames(Conn& c, const char* data, std::size_t len, std::uint64_t t);
  void fail(Conn& c, bool was_open);
  // ws_tls.cpp: TLS under the WebSocket code. recv_some: bytes read, 0 on EOF or an error, -1
  // when nothing is there yet; send_some: bytes written, -1 when the socket is full, -2 on an
  // error.
  SSL_CTX* tls_context();
  bool start_tls(Conn& c);
  void drive_tls(Conn& c);
  ssize_t recv_some(Conn& c, char* buf, std::size_t len);
  ssize_t send_some(Conn& c, const char* data, std::size_t len);
  void release(Conn& c);  // SO_LINGER 0 when we closed, SSL freed, fd closed
  // Inflates a compressed message into inflated_; false (and the connection failed) when corrupt.
  bool inflate(Conn& c, const char* data, std::size_t len);

  Handler& handler_;
  int epfd_ = -1;
  unsigned source_addresses_ = 0;
  unsigned next_source_ = 0;
  std::uint64_t rng_;
  std::vector<char> rbuf_;
  bool offer_deflate_ = false;
  std::string subprotocol_;
  SSL_CTX* tls_ctx_ = nullptr;
  // One inflater for every connection whose server resets its context after each message.
  std::unique_ptr<Inflater> shared_inflater_;
  std::string inflated_;
  // Compressed bytes -> inflated text, for the messages in flight (cleared when it grows past
  // kMemoMax: a closed loop keeps a few hundred distinct messages in flight at most).
  struct MemoHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  static constexpr std::size_t kMemoMax = 4096;
  bool memo_on_ = false;
  std::unordered_map<std::string, std::string, MemoHash, std::equal_to<>> memo_;
};

// Helpers for the JSON fragments the modes read (the frames come from trusted servers in a
// benchmark, so a scan for a key is enough; no general JSON parser on the hot path).
bool find_int(std::string_view text, std::string_view key, std::int64_t& out, std::size_t from = 0);
bool has(std::string_view text, std::string_view needle);

}  // namespace bench
