// TLS 1.2 sessions by session id, one cache for the whole process. Each shard's lws vhost has an
// OpenSSL context of its own, and OpenSSL keeps a server's sessions in the context the handshake
// began on: a TLS 1.2 client that resumes by session id (it takes no tickets) resumed only when
// its reconnection landed on the shard that issued the id, about one in `threads`. Tickets, what
// every TLS 1.3 client and most TLS 1.2 clients use, resume anywhere already (their keys are
// shared, server_certificates.cpp), and need no cache: TLS 1.3 sessions are not kept here, which
// would only hold their memory after their connections closed.
//
// Sessions are looked up under the same rules as OpenSSL's own cache: the session id context
// (certificate and client-certificate policy, server_certificates.hpp) must match, and a session
// past its timeout (OpenSSL's default for TLS 1.2, two hours) is not resumed. At most
// kMaxSharedSessions, and kMaxSharedSessionBytes of their encodings, are kept, the oldest
// dropped first. (TLS 1.3 tickets are stateless here:
// with SSL_OP_NO_TICKET set they would become stateful, kept in this cache, and would need it to
// take TLS 1.3 sessions too.)
#pragma once

#include <openssl/types.h>

#include <cstddef>

namespace wsbridge::tls {

// OpenSSL's own default bound for one context's cache (SSL_SESSION_CACHE_MAX_SIZE_DEFAULT), and
// a bound on their bytes: a session keeps its client's certificate, which may be large (a
// session larger than 1/64 of it is not kept).
inline constexpr std::size_t kMaxSharedSessions = 20 * 1024;
inline constexpr std::size_t kMaxSharedSessionBytes = 32 * 1024 * 1024;

// Makes `ctx` (a vhost's, on any shard) keep its server sessions in the process's cache instead
// of its own. Once per context, before it serves.
void use_shared_session_cache(SSL_CTX* ctx);

// How many sessions the cache holds now, and their encodings' bytes together (tests).
std::size_t shared_session_count();
std::size_t shared_session_bytes();

}  // namespace wsbridge::tls
