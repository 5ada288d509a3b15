// The mask guard on wss:// (mask_guard.hpp says what it guards). On a TLS connection lws reads
// the plaintext with SSL_read(), not recv(): the executable interposes SSL_read() too, and runs
// the very same guard on the plaintext, reading through the real SSL_read() (and SSL_peek() where
// the guard peeks at a request head before taking only up to its end). The guard's other parts
// need nothing more: they work per descriptor, and SSL_get_fd() names it.
//
// One difference with recv(): when the guard holds bytes back it answers "try again", which for
// recv() is -1 with EAGAIN, and for SSL_read() is -1 and then SSL_get_error() == WANT_READ and
// SSL_want() == SSL_READING, which lws asks next (openssl-ssl.c, lws_ssl_capable_read). Those two
// are interposed as well and say so for that SSL until its next read or write; every other call
// passes straight through to OpenSSL.
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <string>

#include "recv_hook/mask_guard.hpp"

namespace {

using SslRead = int (*)(SSL*, void*, int);
using SslWrite = int (*)(SSL*, const void*, int);
using SslGetError = int (*)(const SSL*, int);
using SslWant = int (*)(const SSL*);

template <class F>
F real(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

SslRead real_read() {
  static const auto f = real<SslRead>("SSL_read");
  return f;
}
SslRead real_peek() {
  static const auto f = real<SslRead>("SSL_peek");
  return f;
}
SslWrite real_write() {
  static const auto f = real<SslWrite>("SSL_write");
  return f;
}

thread_local SSL* t_reading = nullptr;            // the SSL of the guarded read under way
thread_local bool t_read_failed = false;          // its real SSL_read/SSL_peek returned <= 0
thread_local const SSL* t_would_block = nullptr;  // answered "try again" by the guard

ssize_t ssl_recv(int, void* buffer, std::size_t length, int flags) {
  const int len = length > INT_MAX ? INT_MAX : static_cast<int>(length);
  const int n = (flags & MSG_PEEK) != 0 ? real_peek()(t_reading, buffer, len)
                                        : real_read()(t_reading, buffer, len);
  if (n <= 0) t_read_failed = true;
  return n;
}

// A 400/431 the guard answers itself: in the TLS stream, then close_notify.
void ssl_reply(int, const std::string& reply) {
  ERR_clear_error();
  if (real_write()(t_reading, reply.data(), static_cast<int>(reply.size())) > 0) {
    SSL_shutdown(t_reading);
  }
  ERR_clear_error();
}

}  // namespace

extern "C" int SSL_read(SSL* ssl, void* buffer, int num) {
  t_would_block = nullptr;
  const int fd = SSL_get_fd(ssl);
  if (fd < 0 || num <= 0) return real_read()(ssl, buffer, num);
  SSL* const outer = t_reading;
  t_reading = ssl;
  t_read_failed = false;
  const ssize_t n = wsbridge::mask_guard::guarded_recv(fd, buffer, static_cast<std::size_t>(num), 0,
                                                       ssl_recv, ssl_reply);
  // (A failed real read left OpenSSL's own state for SSL_get_error to report.)
  if (n < 0 && !t_read_failed) t_would_block = ssl;
  t_reading = outer;
  // lws looks at OpenSSL's buffer again only after a read that filled what it asked for; when
  // the guard gave it less (it stops at the end of a request head), say what is left.
  if (n != num && SSL_pending(ssl) > 0) wsbridge::mask_guard::plaintext_waiting(fd);
  return static_cast<int>(n);
}

extern "C" int SSL_write(SSL* ssl, const void* buffer, int num) {
  t_would_block = nullptr;
  return real_write()(ssl, buffer, num);
}

extern "C" int SSL_get_error(const SSL* ssl, int ret) {
  static const auto f = real<SslGetError>("SSL_get_error");
  if (ret < 0 && ssl != nullptr && ssl == t_would_block) return SSL_ERROR_WANT_READ;
  return f(ssl, ret);
}

extern "C" int SSL_want(const SSL* ssl) {
  static const auto f = real<SslWant>("SSL_want");
  if (ssl != nullptr && ssl == t_would_block) return SSL_READING;
  return f(ssl);
}
