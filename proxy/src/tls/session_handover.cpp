#include "tls/session_handover.hpp"

#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <utility>

namespace wsbridge::tls {

thread_local SSL* t_handed_over = nullptr;  // for SSL_new() below

namespace {

// Undoes keep_session's quiet shutdown: the session speaks again.
void wake(SSL* ssl) {
  SSL_set_quiet_shutdown(ssl, 0);
  SSL_set_shutdown(ssl, 0);
}

}  // namespace

SSL* keep_session(SSL* ssl) {
  SSL_up_ref(ssl);
  SSL_set_quiet_shutdown(ssl, 1);
  return ssl;
}

void hand_over_on_next_new(SSL* ssl) {
  wake(ssl);
  t_handed_over = ssl;
}

void end_hand_over() {
  if (SSL* unused = std::exchange(t_handed_over, nullptr)) SSL_free(unused);
}

void reply_and_free(SSL* ssl, int fd, std::string_view bytes) {
  wake(ssl);
  // The session's socket BIO still names lws' descriptor number, closed since: point it here.
  if (SSL_set_fd(ssl, fd) == 1) {
    BIO_set_nbio(SSL_get_rbio(ssl), 1);
    ERR_clear_error();
    if (SSL_write(ssl, bytes.data(), static_cast<int>(bytes.size())) > 0) SSL_shutdown(ssl);
  }
  ERR_clear_error();
  SSL_free(ssl);
}

}  // namespace wsbridge::tls

// lws' SSL_new() for a connection it adopts gets the session handed over, when there is one.
extern "C" SSL* SSL_new(SSL_CTX* ctx) {
  using SslNew = SSL* (*)(SSL_CTX*);
  static const auto real = reinterpret_cast<SslNew>(dlsym(RTLD_NEXT, "SSL_new"));
  if (SSL* kept = std::exchange(wsbridge::tls::t_handed_over, nullptr)) return kept;
  return real(ctx);
}
