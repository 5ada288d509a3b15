// The load generator's TLS client (wss://): OpenSSL on the same non-blocking sockets, under the
// WebSocket code of ws_client.cpp. Every connection makes a full handshake: no session cache and
// no tickets offered, because the handshake mode measures what a crowd of new clients costs a
// server (a reconnect storm after a restart), not resumption.
#include <errno.h>
#include <openssl/err.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <climits>

#include "ws_client.hpp"

namespace bench {

SSL_CTX* Loop::tls_context() {
  if (tls_ctx_ != nullptr) return tls_ctx_;
  tls_ctx_ = SSL_CTX_new(TLS_client_method());
  if (tls_ctx_ == nullptr) return nullptr;
  SSL_CTX_set_session_cache_mode(tls_ctx_, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(tls_ctx_, SSL_OP_NO_TICKET);
  // The bench's own self-signed certificate: not verified. The server still proves it holds the
  // key (CertificateVerify, checked), so it does all of a real handshake. The callback replaces
  // the chain building OpenSSL 3 otherwise does on every handshake even with SSL_VERIFY_NONE:
  // the load generator shares the machine with the server and must stay cheap.
  SSL_CTX_set_verify(tls_ctx_, SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_cert_verify_callback(
      tls_ctx_, [](X509_STORE_CTX*, void*) { return 1; }, nullptr);
  // Partial writes behave like send(); the output buffer may move between retries (it grows);
  // idle connections give their 16 KiB record buffers back (thousands of them in the idle mode).
  SSL_CTX_set_mode(tls_ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                 SSL_MODE_RELEASE_BUFFERS);
  // Read what the socket has in one recv() and decrypt the records from it, as browsers do:
  // without it OpenSSL reads each record's 5-byte header and then its body, two system calls
  // per record, and a server that sends one small record per message (Node) cost the load
  // generator twice the calls of one that fills its records (wsbridge).
  SSL_CTX_set_read_ahead(tls_ctx_, 1);
  static const unsigned char kAlpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(tls_ctx_, kAlpn, sizeof kAlpn - 1);
  return tls_ctx_;
}

bool Loop::start_tls(Conn& c) {
  SSL_CTX* ctx = tls_context();
  if (ctx == nullptr) return false;
  c.ssl = SSL_new(ctx);
  if (c.ssl == nullptr || SSL_set_fd(c.ssl, c.fd) != 1) {
    if (c.ssl != nullptr) SSL_free(c.ssl);
    c.ssl = nullptr;
    return false;
  }
  SSL_set_connect_state(c.ssl);
  return true;
}

void Loop::drive_tls(Conn& c) {
  ERR_clear_error();
  const int r = SSL_do_handshake(c.ssl);
  if (r == 1) {
    ++tls_handshakes;
    if (SSL_session_reused(c.ssl)) ++tls_resumed;
    if (tls_version.empty()) {
      tls_version = SSL_get_version(c.ssl);
      tls_cipher = SSL_get_cipher_name(c.ssl);
    }
    c.state = State::kHandshaking;
    flush(c);  // the upgrade request
    return;
  }
  switch (SSL_get_error(c.ssl, r)) {
    case SSL_ERROR_WANT_READ:
      if (c.epollout) set_events(c, EPOLLIN);
      return;
    case SSL_ERROR_WANT_WRITE:
      if (!c.epollout) set_events(c, EPOLLIN | EPOLLOUT);
      return;
    default:
      fail(c, false);
  }
}

ssize_t Loop::recv_some(Conn& c, char* buf, std::size_t len) {
  if (c.ssl == nullptr) {
    const ssize_t n = ::recv(c.fd, buf, len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return -1;
    return n < 0 ? 0 : n;
  }
  // Everything OpenSSL can decrypt now (one record per SSL_read), like one large recv().
  std::size_t total = 0;
  while (total < len) {
    ERR_clear_error();
    const int r =
        SSL_read(c.ssl, buf + total, static_cast<int>(std::min<std::size_t>(len - total, INT_MAX)));
    if (r > 0) {
      total += static_cast<std::size_t>(r);
      continue;
    }
    const int e = SSL_get_error(c.ssl, r);
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_WANT_WRITE) {  // a key update to answer: when the socket has room
      if (!c.epollout) set_events(c, EPOLLIN | EPOLLOUT);
      break;
    }
    // close_notify, EOF or an error: what came before it first, the end at the next event.
    return static_cast<ssize_t>(total);
  }
  return total > 0 ? static_cast<ssize_t>(total) : -1;
}

ssize_t Loop::send_some(Conn& c, const char* data, std::size_t len) {
  if (c.ssl == nullptr) {
    const ssize_t n = ::send(c.fd, data, len, MSG_NOSIGNAL);
    if (n >= 0) return n;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -1 : -2;
  }
  ERR_clear_error();
  const int r = SSL_write(c.ssl, data, static_cast<int>(std::min<std::size_t>(len, INT_MAX)));
  if (r > 0) return r;
  const int e = SSL_get_error(c.ssl, r);
  return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? -1 : -2;
}

void Loop::release(Conn& c) {
  if (c.we_closed) {
    // No TIME_WAIT on either side: a handshake run opens tens of thousands of connections.
    const linger lg{1, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
  if (c.ssl != nullptr) {
    SSL_free(c.ssl);
    c.ssl = nullptr;
  }
  ::close(c.fd);
  c.fd = -1;
}

}  // namespace bench
