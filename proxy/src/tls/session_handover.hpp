// Moving a TLS session from one lws connection to the next, for an upgrade held while its
// route's adapter decides (upgrade_hold.hpp). The held socket leaves lws, which closes its
// connection: lws_ssl_close() would send close_notify and free the SSL. So the core keeps a
// reference and makes that shutdown quiet (no byte is written). When the verdict comes, lws
// adopts the socket again and, on a TLS vhost, makes a new SSL for it with SSL_new(): the
// executable interposes SSL_new() to hand lws the kept session instead. Its handshake is done,
// so lws' SSL_accept() returns 1 at once and the request replays as on a plain socket.
#pragma once

#include <openssl/types.h>

#include <string_view>

namespace wsbridge::tls {

// Keeps `ssl` alive and silent past lws' close of its connection; returns the reference held.
SSL* keep_session(SSL* ssl);

// The next SSL_new() on this thread returns `ssl` (its reference passes to the caller, lws).
void hand_over_on_next_new(SSL* ssl);
// After the adoption: frees the session if lws never asked for it (the adoption failed first).
void end_hand_over();

// Writes `bytes` in the session to `fd` (non-blocking, best effort), sends close_notify, frees
// the kept reference. Does not close `fd`.
void reply_and_free(SSL* ssl, int fd, std::string_view bytes);

}  // namespace wsbridge::tls
