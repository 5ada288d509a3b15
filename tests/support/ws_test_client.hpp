// Minimal WebSocket/HTTP test client for wsbridge integration tests.
//
// Deliberately self-contained (POSIX sockets, OpenSSL for SHA-1, zlib for permessage-deflate) so
// the tests never share code with the proxy they are checking: a bug in the server's framing must
// not be masked by the same bug in the client. (The one exception, wsbridge/base64.hpp, is not on
// the server's handshake path: lws computes the accept key; base64 has unit tests of its own.)
//
// Every blocking operation takes a timeout (default kDefaultTimeout) and is implemented with
// poll() on a non-blocking socket, so a misbehaving server makes a test fail instead of hang.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsbridge::testing {

inline constexpr std::chrono::milliseconds kDefaultTimeout{5000};

// Largest frame payload decode_frame() accepts. Protects the test process from allocating
// gigabytes when a server bug produces a garbage length field.
inline constexpr uint64_t kMaxFramePayload = 256ull * 1024 * 1024;

enum class Opcode : uint8_t {
  kContinuation = 0,
  kText = 1,
  kBinary = 2,
  kClose = 8,
  kPing = 9,
  kPong = 10
};

std::string_view opcode_name(Opcode op);

// A parsed HTTP/1.1 response head (+ body when Content-Length, chunked or close-delimited).
struct HttpResponse {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  // names as received, in order
  std::string body;

  // Case-insensitive lookup; returns the first header with that name.
  std::optional<std::string> header(std::string_view name) const;
  // All values of a (possibly repeated) header, case-insensitive.
  std::vector<std::string> header_values(std::string_view name) const;
};

struct Frame {
  Opcode opcode;
  bool fin;
  bool rsv1;
  std::string payload;  // already unmasked
  // Extensions to the spec'd struct (defaulted, so 4-element aggregate init still works); they
  // let tests assert that the server never sets rsv2/rsv3 and never masks its frames.
  bool rsv2 = false;
  bool rsv3 = false;
  bool masked = false;
};

// ---- Pure helpers (no I/O) --------------------------------------------------------------------

// base64(SHA1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) as required by RFC 6455 4.2.2.
std::string websocket_accept_key(std::string_view client_key);
// A fresh random Sec-WebSocket-Key (base64 of 16 random bytes).
std::string random_websocket_key();

using MaskKey = std::array<uint8_t, 4>;
MaskKey random_mask_key();

// Encodes one frame. mask_key == nullopt produces an unmasked (server-style) frame.
std::string encode_frame(Opcode op, std::string_view payload, bool fin = true,
                         const std::optional<MaskKey>& mask_key = std::nullopt, bool rsv1 = false);
// Same, but with full control over the first header byte (FIN|RSV1|RSV2|RSV3|opcode) so tests
// can produce reserved opcodes or RSV2/RSV3 bits.
std::string encode_raw_frame(uint8_t first_byte, std::string_view payload,
                             const std::optional<MaskKey>& mask_key = std::nullopt);
// Parses one frame from the front of `buffer` and erases it from there. Returns nullopt (and
// leaves `buffer` untouched) when the buffer does not yet hold a complete frame. Masked frames
// are unmasked. Throws std::runtime_error on a malformed header (64-bit length with MSB set,
// payload > kMaxFramePayload).
std::optional<Frame> decode_frame(std::string& buffer);

// Raw DEFLATE (RFC 7692) compressor for one direction of a connection. Movable; the zlib stream
// lives on the heap because zlib keeps a back pointer to it.
class Deflater {
 public:
  // window_bits 9..15 (zlib cannot produce an 8-bit window; 8 is bumped to 9).
  explicit Deflater(int window_bits = 15);
  ~Deflater();
  Deflater(Deflater&&) noexcept;
  Deflater& operator=(Deflater&&) noexcept;
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;

  // Compresses one message with Z_SYNC_FLUSH and strips the trailing 00 00 ff ff. The
  // compression context is kept for the next call unless reset() is called.
  std::string compress(std::string_view data);
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Inflater {
 public:
  // window_bits 8..15: an inflater with exactly this window fails on any back reference further
  // than it, which tests use to check a server keeps within the window it agreed.
  explicit Inflater(int window_bits = 15);
  ~Inflater();
  Inflater(Inflater&&) noexcept;
  Inflater& operator=(Inflater&&) noexcept;
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;

  // Decompresses one message payload (as carried on the wire, i.e. without the 00 00 ff ff
  // tail, which is appended here). Throws on corrupt data or output > max_output.
  std::string decompress(std::string_view payload, size_t max_output = kMaxFramePayload);
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- TCP ----------------------------------------------------------------------------------------

// A TLS client on top of a TcpConn (ws_test_client_tls.cpp, OpenSSL): wss:// and https:// for the
// TLS tests. OpenSSL is a separate stack from the server's (lws on OpenSSL too, but its own
// configuration and state), and every knob a test needs to provoke a refusal is here.
struct TlsOptions {
  std::string ca_file;      // PEM roots to trust; empty: do not verify the server at all
  std::string server_name;  // SNI and the name checked against the certificate; empty: no SNI
  bool verify_name = true;  // check server_name (or the IP 127.0.0.1 when it is empty)
  std::string cert_file;    // client certificate (mTLS), with key_file
  std::string key_file;
  int min_version = 0;  // TLS1_2_VERSION, ...; 0 = OpenSSL's default
  int max_version = 0;
  std::vector<std::string> alpn = {"http/1.1"};
};

class TlsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a completed TLS handshake agreed on.
struct TlsInfo {
  std::string version;         // "TLSv1.3"
  std::string cipher;          // "TLS_AES_256_GCM_SHA384"
  std::string alpn;            // "" when none was selected
  std::string peer_subject;    // RFC 2253: "CN=localhost,O=wsbridge tests"
  std::string peer_serial;     // uppercase hex
  std::string peer_not_after;  // "Dec 30 18:00:00 2026 GMT"
};

// Raw TCP connection (usually to 127.0.0.1/::1) with helpers. Not thread-safe.
//
// Bytes that arrived but were not consumed by a helper (e.g. frames that followed a 101 head in
// the same segment) stay in buffer() and are seen by the next read.
class TcpConn {
 public:
  enum class ReadStatus { kData, kEof, kTimeout };

  static TcpConn connect(const std::string& host, uint16_t port,
                         std::chrono::milliseconds timeout = kDefaultTimeout);
  // connect() and, with tls, start_tls(): what a test writes to reach a listener of either kind.
  static TcpConn connect(const std::string& host, uint16_t port,
                         const std::optional<TlsOptions>& tls,
                         std::chrono::milliseconds timeout = kDefaultTimeout);
  // Runs a TLS client handshake on this connection; from then on every read and write goes
  // through it. Throws TlsError when the handshake fails (alert, bad certificate, EOF).
  // (With TLS 1.3 a server's refusal of the client certificate arrives after this returns,
  // on the first read.)
  void start_tls(const TlsOptions& opts, std::chrono::milliseconds timeout = kDefaultTimeout);
  bool is_tls() const { return tls_ != nullptr; }
  const TlsInfo& tls_info() const;
  // Takes ownership of an already connected stream socket (e.g. one end of a socketpair()).
  static TcpConn adopt(int fd);

  ~TcpConn();
  TcpConn(TcpConn&& other) noexcept;
  TcpConn& operator=(TcpConn&& other) noexcept;
  TcpConn(const TcpConn&) = delete;
  TcpConn& operator=(const TcpConn&) = delete;

  // Throws if not everything could be written within `timeout` or the peer is gone.
  void send_all(std::string_view bytes, std::chrono::milliseconds timeout = kDefaultTimeout);
  // Reads until the peer closes or timeout; returns what arrived (including buffered bytes).
  std::string read_until_close(std::chrono::milliseconds timeout = kDefaultTimeout);
  // Reads a full HTTP response head and body (Content-Length, chunked, or until close when
  // neither is present and the status allows a body). Throws on timeout or premature EOF.
  HttpResponse read_http_response(std::chrono::milliseconds timeout = kDefaultTimeout);
  // true if the peer has closed (EOF or RST) within timeout. Data that arrives meanwhile is
  // kept in buffer().
  bool wait_closed(std::chrono::milliseconds timeout);
  int fd() const;

  // Low-level access for custom parsers: one recv() into buffer() (waiting until deadline).
  ReadStatus read_some(std::chrono::steady_clock::time_point deadline);
  std::string& buffer() { return buffer_; }
  bool eof() const { return eof_; }

  // Half-close (send FIN) while still being able to read.
  void shutdown_write();
  // Closes immediately with an RST (SO_LINGER 0) to simulate a crashed client.
  void abort();
  void close();

 private:
  explicit TcpConn(int fd);  // (out of line: tls_'s type is complete only there)
  std::string read_exact(size_t n, std::chrono::steady_clock::time_point deadline,
                         std::string_view what);
  std::string read_line(std::chrono::steady_clock::time_point deadline, std::string_view what);

  struct Tls;  // SSL_CTX and SSL (ws_test_client_tls.cpp)
  // One read or write through TLS, non-blocking: >0 bytes, 0 EOF, -1 wait for POLLIN, -2 POLLOUT.
  long tls_recv(char* buf, size_t len);
  long tls_send(std::string_view bytes);
  void tls_shutdown();

  int fd_ = -1;
  bool eof_ = false;
  std::string buffer_;
  std::unique_ptr<Tls> tls_;
};

// Simple one-shot HTTP GET over a fresh connection ("Connection: close"). extra_headers with
// the same name as a default header (Host, Connection) replace it.
HttpResponse http_get(const std::string& host, uint16_t port, const std::string& path,
                      const std::vector<std::pair<std::string, std::string>>& extra_headers = {},
                      std::chrono::milliseconds timeout = kDefaultTimeout);

// ---- WebSocket ----------------------------------------------------------------------------------

struct ClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string path = "/";
  // An empty key / version omits the header entirely (for negative handshake tests).
  std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
  std::string version = "13";
  // e.g. Origin. A header with the same (case-insensitive) name as one of the defaults (Host,
  // Upgrade, Connection, Sec-WebSocket-*) replaces the default instead of being added twice.
  std::vector<std::pair<std::string, std::string>> extra_headers;
  // Adds "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits".
  bool offer_deflate = false;
  std::chrono::milliseconds timeout{5000};
  // wss:// (and https:// for http_get(ClientOptions)) when set.
  std::optional<TlsOptions> tls;
};

// GET opts.path over a fresh connection (TLS when opts.tls), "Connection: close", with
// opts.extra_headers.
HttpResponse http_get(const ClientOptions& opts);

// The exact request bytes WsClient::connect would send; handy for tests that want to tamper
// with a handshake and send it through a TcpConn.
std::string build_handshake_request(const ClientOptions& opts);

class HandshakeError : public std::runtime_error {
 public:
  HandshakeError(const std::string& what, HttpResponse response)
      : std::runtime_error(what), response_(std::move(response)) {}
  const HttpResponse& response() const { return response_; }

 private:
  HttpResponse response_;
};

// Negotiated permessage-deflate parameters (from the server's Sec-WebSocket-Extensions).
struct DeflateParams {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 15;
  int client_max_window_bits = 15;
};

class WsClient {
 public:
  // Performs the opening handshake. On a non-101 answer, a wrong Sec-WebSocket-Accept, missing
  // Upgrade/Connection tokens, or an extension we did not offer, throws HandshakeError.
  static WsClient connect(const ClientOptions& opts);
  // Wraps an already upgraded connection without a handshake (used by the self-test with a
  // socketpair; handshake_response() is then empty).
  static WsClient adopt(TcpConn conn, std::optional<DeflateParams> deflate = std::nullopt);

  ~WsClient();
  WsClient(WsClient&&) noexcept;
  WsClient& operator=(WsClient&&) noexcept;
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  const HttpResponse& handshake_response() const;
  bool deflate_negotiated() const;  // server answered with permessage-deflate
  const std::optional<DeflateParams>& deflate_params() const { return deflate_; }

  // Low level: send one frame. mask=false lets tests send an (illegal) unmasked client frame.
  // rsv1 marks a compressed frame. Payload is sent as given.
  void send_frame(Opcode op, std::string_view payload, bool fin = true, bool mask = true,
                  bool rsv1 = false);
  // Even lower: arbitrary first header byte (reserved opcodes, RSV2/RSV3).
  void send_raw_frame(uint8_t first_byte, std::string_view payload, bool mask = true);
  // High level: whole message in one frame; compressed with permessage-deflate when negotiated
  // (and compress=true).
  void send_text(std::string_view s, bool compress = true);
  void send_binary(std::string_view s, bool compress = true);
  // Sends a close frame with a 2-byte code + reason. For an empty close body use
  // send_frame(Opcode::kClose, "").
  void send_close(uint16_t code, std::string_view reason = "");
  // Compresses with this connection's deflate stream (honouring client_no_context_takeover),
  // for tests that build fragmented compressed messages with send_frame(..., rsv1=true).
  // Throws if deflate was not negotiated.
  std::string compress(std::string_view data);

  // Reads one frame (decompresses nothing, answers nothing). Throws on timeout or EOF.
  Frame read_frame(std::chrono::milliseconds timeout = kDefaultTimeout);

  // opcode kText/kBinary, or kClose with data = 2-byte code + reason.
  struct Message {
    Opcode opcode;
    std::string data;
    // For kClose messages: the code (1005 when absent) and the reason text.
    uint16_t close_code() const;
    std::string close_reason() const;
  };
  // Reads one complete data message: reassembles continuation frames, inflates when rsv1 is set
  // (one inflate stream per connection, reset per message on server_no_context_takeover),
  // answers PINGs with PONGs (when auto_pong is on) and skips PONGs. Returns a close frame as a
  // kClose message without answering it (wait_close() will then echo it). Throws on timeout, EOF
  // or a protocol violation by the server.
  Message read_message(std::chrono::milliseconds timeout = kDefaultTimeout);
  // Waits for the server's close frame (skipping data and answering pings), answers with a close
  // echo (unless we already sent a close), and returns the close code (1005 if the close frame
  // had no code). Returns 1006 if the TCP connection ended without a close frame. Throws on
  // timeout.
  uint16_t wait_close(std::chrono::milliseconds timeout = kDefaultTimeout);
  void set_auto_pong(bool on);  // default true
  int pings_received() const;   // PING frames seen by read_message/wait_close/read_frame
  int pongs_received() const;
  bool close_sent() const { return close_sent_; }
  TcpConn& tcp();

 private:
  explicit WsClient(TcpConn conn);
  // Like read_frame but returns nullopt on EOF instead of throwing.
  std::optional<Frame> next_frame(std::chrono::steady_clock::time_point deadline);
  void setup_deflate(const DeflateParams& params);

  TcpConn tcp_;
  HttpResponse handshake_;
  std::optional<DeflateParams> deflate_;
  std::optional<Deflater> deflater_;
  std::optional<Inflater> inflater_;
  bool auto_pong_ = true;
  int pings_ = 0;
  int pongs_ = 0;
  bool close_sent_ = false;
  // Set when read_message already handed a close frame to the caller.
  std::optional<uint16_t> close_received_;
};

}  // namespace wsbridge::testing
