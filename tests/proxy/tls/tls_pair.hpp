// A TLS connection inside one test process: the server side starts on a "vhost" context prepared
// as lws' would be (tls::prepare_vhost_context), the client side is plain OpenSSL, and the two
// talk over a non-blocking socketpair. Both handshakes are driven in turn from one thread.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "support/test_ca.hpp"
#include "tls/server_certificates.hpp"

namespace wsbridge::testing {

struct ClientSide {
  std::string server_name;  // SNI; empty: none
  int max_version = 0;      // e.g. TLS1_2_VERSION; 0: any
  const IssuedCert* cert = nullptr;
  std::string trust_file;  // the CA file to verify the server with; empty: no verification
};

inline ClientSide client_side(std::string server_name, int max_version = 0,
                              const IssuedCert* cert = nullptr, std::string trust_file = {}) {
  ClientSide side;
  side.server_name = std::move(server_name);
  side.max_version = max_version;
  side.cert = cert;
  side.trust_file = std::move(trust_file);
  return side;
}

class TlsPair {
 public:
  TlsPair(std::shared_ptr<const tls::ServerCertificates> certs, const ClientSide& side) {
    slot_.current = std::move(certs);
    ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds_);
    vhost_ = SSL_CTX_new(TLS_server_method());
    tls::prepare_vhost_context(vhost_, &slot_);
    server = SSL_new(vhost_);
    SSL_set_mode(server, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);  // as lws
    SSL_set_fd(server, fds_[0]);
    SSL_set_accept_state(server);
    client_ctx_ = SSL_CTX_new(TLS_client_method());
    if (side.max_version != 0) SSL_CTX_set_max_proto_version(client_ctx_, side.max_version);
    if (!side.trust_file.empty()) {
      SSL_CTX_load_verify_locations(client_ctx_, side.trust_file.c_str(), nullptr);
      SSL_CTX_set_verify(client_ctx_, SSL_VERIFY_PEER, nullptr);
    }
    if (side.cert != nullptr) {
      SSL_CTX_use_certificate_file(client_ctx_, side.cert->cert_file.c_str(), SSL_FILETYPE_PEM);
      SSL_CTX_use_PrivateKey_file(client_ctx_, side.cert->key_file.c_str(), SSL_FILETYPE_PEM);
    }
    client = SSL_new(client_ctx_);
    SSL_set_fd(client, fds_[1]);
    if (!side.server_name.empty()) {  // (SSL_set_tlsext_host_name casts C-style)
      SSL_ctrl(client, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(side.server_name.c_str()));
    }
    SSL_set_connect_state(client);
  }
  ~TlsPair() {
    SSL_free(server);
    SSL_free(client);
    SSL_CTX_free(vhost_);
    SSL_CTX_free(client_ctx_);
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  TlsPair(const TlsPair&) = delete;
  TlsPair& operator=(const TlsPair&) = delete;

  // Drives both handshakes; true when both completed. (TLS 1.3 reports a refused client
  // certificate to the client only on its first read: `client_read_ok` does that read.)
  bool handshake() {
    for (int i = 0; i < 100; ++i) {
      const int s = SSL_do_handshake(server);
      const int c = SSL_do_handshake(client);
      if (s == 1 && c == 1) return true;
      if ((s <= 0 && !retry(server, s)) || (c <= 0 && !retry(client, c))) return false;
    }
    return false;
  }
  // One round trip from the server's side after the handshake: false when the server (or the
  // client) dropped the connection instead.
  bool round_trip() {
    if (SSL_write(server, "ping", 4) != 4) return false;
    char buf[16];
    for (int i = 0; i < 100; ++i) {
      const int n = SSL_read(client, buf, sizeof buf);
      if (n > 0) return true;
      if (!retry(client, n)) return false;
      SSL_read(server, buf, sizeof buf);  // lets the server process the client's certificate
    }
    return false;
  }
  // A reload: the slot adopts `certs` (as TlsSlot::adopt does on the service thread), and the
  // connection, already accepted, has not sent its ClientHello yet.
  void reload(std::shared_ptr<const tls::ServerCertificates> certs) {
    slot_.adopt(std::move(certs));
  }
  // The server side made again from the vhost context, as a connection accepted now would be.
  void accept_again() {
    SSL_free(server);
    server = SSL_new(vhost_);
    SSL_set_mode(server, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_set_fd(server, fds_[0]);
    SSL_set_accept_state(server);
  }
  void set_send_buffer(int bytes) {
    ::setsockopt(fds_[0], SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    ::setsockopt(fds_[1], SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }

  SSL* server = nullptr;
  SSL* client = nullptr;

 private:
  static bool retry(SSL* ssl, int ret) {
    const int e = SSL_get_error(ssl, ret);
    ERR_clear_error();
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
  }

  tls::TlsSlot slot_;
  int fds_[2] = {-1, -1};
  SSL_CTX* vhost_ = nullptr;
  SSL_CTX* client_ctx_ = nullptr;
};

}  // namespace wsbridge::testing
