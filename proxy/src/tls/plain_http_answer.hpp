// A plain HTTP request sent to a TLS listener (http://host:8443/ where https:// was meant, a
// ws:// URL on a wss:// port) is answered in plain HTTP: 400 and a line saying to use https://
// or wss://, as nginx and Go's servers answer it. lws 4.1.6 closed the connection as its TLS
// handshake failed, which a browser shows as a reset with no hint why.
//
// OpenSSL recognises the request in the first record it reads (SSL_R_HTTP_REQUEST for GET,
// POST, HEAD and PUT; SSL_R_HTTPS_PROXY_REQUEST for CONNECT) and fails the handshake without
// an alert, so nothing has been written yet: the answer is the first byte the client gets. The
// listener contexts' info callback calls this as SSL_accept gives up.
#pragma once

#include <openssl/ssl.h>

namespace wsbridge::tls {

// True if `ssl`'s handshake just failed on a plain HTTP request; then the request's bytes still
// in the socket have been read (a close with unread bytes would reset the connection and lose
// the answer), the answer sent and the sending side shut down. lws closes the socket after.
bool answer_plain_http_request(const SSL* ssl);

}  // namespace wsbridge::tls
