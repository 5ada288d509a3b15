// Holding a WebSocket upgrade while an adapter decides, asynchronously, whether to admit it
// (Adapter::admit, e.g. the http adapter's on_connect hook).
//
// lws 4.1.6 wants the upgrade decided inside LWS_CALLBACK_HTTP_CONFIRM_UPGRADE, synchronously,
// and has no way to park a request. So the core takes the socket out of lws' hands instead: it
// keeps a duplicate of the descriptor, puts a fresh unconnected socket under lws' descriptor
// number (so lws' close of its connection neither shuts down nor closes the client's socket), and
// refuses the upgrade to lws. When the answer comes, the socket is adopted again with the very
// request bytes lws had read (lws_adopt_socket_vhost_readbuf); lws parses the request a second
// time and the core answers it from the recorded verdict: 101 or the refusal's status.
// On a TLS listener the session moves with the socket (tls/session_handover.hpp).
#pragma once

#include <openssl/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "wsbridge/http_client.hpp"

namespace wsbridge::upgrade_hold {

// Takes the client's socket away from `fd`: returns a new descriptor for it and leaves an
// unconnected socket at `fd` for its owner to close. nullopt when the descriptors run out.
std::optional<int> detach_socket(int fd);

// The header fields of an HTTP/1.1 request head (its first line skipped), in order.
HttpHeaders parse_request_headers(std::string_view request);

// Writes a small complete HTTP response straight to a held socket and closes it (used when the
// socket cannot go back to lws, e.g. the decision did not come in time).
// With `ssl` (a TLS session kept by tls::keep_session), the answer goes in the session.
// `extra_headers`: whole header lines (the listener's HSTS).
void reply_and_close(int fd, unsigned status, std::string_view reason, SSL* ssl = nullptr,
                     std::string_view extra_headers = {});

}  // namespace wsbridge::upgrade_hold
