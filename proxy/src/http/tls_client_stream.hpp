// TLS for one client byte stream, on OpenSSL memory BIOs: the HTTP client's sockets are lws RAW
// connections, and lws 4.1.6 fails TLS on RAW client connections (it starts the TLS handshake
// before the socket exists: "tls start fail", EBADF), so the pool encrypts itself. Certificates
// are verified against the system's CAs or the backend's ca_file, and the host name (or IP
// address) is checked.
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct ssl_ctx_st;
struct ssl_st;
struct bio_st;

namespace wsbridge {

class TlsClientContext {
 public:
  // Throws std::runtime_error when the CA file (or the client certificate or key) cannot be
  // loaded. Without `verify`, any server certificate is accepted (a test broker's self-signed).
  explicit TlsClientContext(const std::string& ca_file, const std::string& cert_file = {},
                            const std::string& key_file = {}, bool verify = true);
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;
  ssl_ctx_st* get() const { return ctx_; }

 private:
  ssl_ctx_st* ctx_ = nullptr;
};

class TlsClientStream {
 public:
  enum class State : unsigned char { kHandshaking, kReady, kFailed };

  TlsClientStream(const TlsClientContext& context, const std::string& host);
  // A server-side session whose handshake lws did on an accepted socket (a browser connection
  // the reverse proxy takes over): its socket BIO is swapped for memory BIOs, so it runs like a
  // client stream from then on. Takes the reference. Plaintext OpenSSL had already decrypted
  // (past the request head lws read) comes out of the first read().
  static std::unique_ptr<TlsClientStream> adopt_established(ssl_st* ssl);
  ~TlsClientStream();
  TlsClientStream(const TlsClientStream&) = delete;
  TlsClientStream& operator=(const TlsClientStream&) = delete;

  // Ciphertext that arrived from the network.
  void feed(const char* data, std::size_t len);
  // Drives the handshake; kReady once it is done, kFailed (see error()) when it failed.
  State advance();
  // Encrypts application bytes (only when ready); false on failure.
  bool write(std::string_view plain);
  // Appends the decrypted bytes available now to `out`; false when the stream failed.
  bool read(std::string& out);
  // Ciphertext waiting to go out on the socket (handshake records, encrypted data).
  std::string take_output();
  const std::string& error() const { return error_; }
  // Gives the session back (lws adopts the socket again and sets its own BIO): the stream is
  // unusable afterwards. Read everything first: ciphertext still in the memory BIO is lost.
  ssl_st* release();

 private:
  TlsClientStream() = default;
  State fail(const std::string& what);

  ssl_st* ssl_ = nullptr;
  bio_st* network_in_ = nullptr;   // owned by ssl_
  bio_st* network_out_ = nullptr;  // owned by ssl_
  State state_ = State::kHandshaking;
  std::string error_;
};

}  // namespace wsbridge
