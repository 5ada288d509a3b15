// RFC 6455 5.1: "a server MUST close the connection upon receiving a frame that is not masked".
// libwebsockets 4.1.6 does not check this on the server side (its parser accepts the frame and
// unmasks it with a stale key), so wsbridge checks it below lws: the executable interposes
// recv(), and for the sockets of its own listeners (each on the shard thread that accepted it)
// follows the client's byte stream exactly as lws reads it: request heads line by line
// (bearer_subprotocol.hpp), then, from the end of the head lws upgraded on, WebSocket frame
// headers, skipping payloads by length whatever bytes they hold. Where it cannot be sure to follow
// lws (a request body on a keep-alive connection, a malformed head), it never guesses: an upgrade
// after that closes with 1002. Payloads cost a few comparisons per frame, not per byte.
//
// In the HTTP phase the same hook takes "bearer.<token>" out of Sec-WebSocket-Protocol, and
// answers itself a head lws could not hold (431) or one it might read differently (400): lws
// 4.1.6 drops an over-long head without a word ("Ran out of header data space").
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "recv_hook/frame_mask_scanner.hpp"

namespace wsbridge {

// Receives the news that a watched socket sent an unmasked frame, or another frame the guard
// refuses (mask_guard::violation says which). Called on the service thread, from inside lws'
// read: only record it and wake the loop.
class UnmaskedFrameSink {
 public:
  virtual void on_unmasked_frame(int fd) = 0;
  // Bytes of `fd` wait for lws where no POLLIN tells of them, because the guard stopped at the
  // end of a request head: decrypted in OpenSSL's buffer (TLS), or replayed (replay_first).
  // lws will not look by itself: read it again soon. Same rules as above.
  virtual void on_plaintext_waiting(int fd) = 0;
  // A request came while the one before is held (hold_next_request): lws must stop reading the
  // socket until that one is answered (it would read the next head into the held request's
  // header table and never complete either). Same rules as above.
  virtual void on_request_waiting(int fd) = 0;

 protected:
  ~UnmaskedFrameSink() = default;
};

namespace mask_guard {

// A request head (request line and headers, as sent) may be this long; longer ones get 431. The
// documented token limit is 8 KiB (docs/CONFIG.md), in any credential source; this leaves as
// much again for the other headers.
inline constexpr std::size_t kMaxRequestHeadBytes = 16 * 1024;
// lws' header space (lws_context_creation_info.max_http_header_data): what lws stores of a head
// that passed the check above always fits (the check also bounds lws' per-line overhead).
inline constexpr unsigned short kLwsHeaderSpace = 24 * 1024;

// A server socket was accepted: follow its requests. Service thread only. `answer_headers`: the
// header lines (with their CRLF) of the answers the guard writes itself, its listener's HSTS as
// lws adds it to its own; owned by the caller, it outlives the watch (null: none).
void watch_http(int fd, UnmaskedFrameSink* sink, const std::string* answer_headers = nullptr);
// lws upgraded the socket to WebSocket (LWS_CALLBACK_ESTABLISHED): the frames start at the end
// of the head it upgraded on. When that is not where the guard is (it lost track), the
// connection is reported as violating at once.
void start_websocket(int fd);
// Shared permessage-deflate was agreed on `fd` (after start_websocket): see FrameMaskScanner.
void accept_compressed(int fd);
// Whether the data message now beginning on `fd` came compressed (in the order they began).
bool take_compressed(int fd);
// Whether lws may owe `fd` an answer it writes by itself (a PONG, a close reply) from its next
// POLLOUT turn: the client sent a PING or a close since answers_flushed(), or the socket is not
// followed as a WebSocket here (then nobody knows). FrameMaskScanner::answer_due says why.
bool answer_may_be_due(int fd);
// The code of the client's first close frame on `fd` (FrameMaskScanner::peer_close_code); 0
// when none came or the socket is not followed as a WebSocket.
std::uint16_t peer_close_code(int fd);
// lws' POLLOUT turn reached the session's WRITEABLE: what lws owed is written (or waits in lws'
// own buffer, which lws_partial_buffered tells).
void answers_flushed(int fd);
// lws answered the upgrade request with an HTTP status and keeps the connection for more
// requests: what follows that head is HTTP again (the server's refuse_upgrade says so).
void upgrade_refused(int fd);
// While the shard holds the request just read (a long poll, an event stream, an answer from
// elsewhere), the next one stays in the socket: a read that finds it there gets nothing and
// tells the sink once (on_request_waiting); the end of the stream still reaches lws at once.
// Releasing returns whether a request waited (the shard lets lws read again and pokes it).
void hold_next_request(int fd);
bool release_next_request(int fd);
// Whether a request waits behind a held one (lws should not be reading the socket).
bool request_waiting(int fd);
// The socket is closing: stop watching it.
void forget(int fd);
// Tells the socket's watcher that plaintext waits in its TLS session (on_plaintext_waiting).
void plaintext_waiting(int fd);
// The recv() wrapper's work: reads through `raw` (the C library's recv, or for TLS connections
// SSL_read / SSL_peek on the plaintext: tls_read_hook.cpp) and returns what lws is to get, as
// recv() would. A head answered here (400, 431) is written with `reply_send` (null: send()).
using RawRecv = ssize_t (*)(int, void*, std::size_t, int);
using ReplySend = void (*)(int fd, const std::string& reply);
ssize_t guarded_recv(int fd, void* buffer, std::size_t length, int flags, RawRecv raw,
                     ReplySend reply_send = nullptr);
// Feeds bytes that go to lws some other way (a held upgrade's head replayed from a buffer):
// rewrites them in place and returns how many lws is to get, or -1 with errno EAGAIN when none.
// Bytes behind an upgrade head given this way make a later upgrade a violation.
long after_recv(int fd, void* buffer, long received);
// The upgrade request head just read from `fd`, as lws got it (with the bearer token already
// taken out; reads stop at a head's end, so nothing follows it): what a held upgrade replays.
// Empty when unknown.
std::string take_request_bytes(int fd);
// The head of the (non-upgrade) request lws has just read from `fd`, as it came: what the
// reverse proxy takes the connection over with. Reads stop at a head's end, so its body (if any)
// is still in the socket. Empty when unknown: the guard stopped following after an earlier body.
// Take it at every request head lws reports (FILTER_HTTP_CONNECTION), used or not: a head left
// here would pass for a later one that the guard no longer follows.
std::string take_head_bytes(int fd);
// How many heads the guard keeps for take_head_bytes beyond the one lws reports. Past that it
// stops following (take_head_bytes gives nothing: the proxy closes such a connection).
inline constexpr std::size_t kMaxHeadsAhead = 16;
// The heads lws was handed beyond the one take_head_bytes just gave (several in a buffer handed
// back to it at once), joined in order, then what replay_first still holds: lws holds the heads,
// unread, and loses them when the reverse proxy takes the connection over at that head, so the
// proxy takes them along, and the replay with them. Nullopt when lws
// may hold more than whole heads the guard kept (part of a head or of a body it read ahead, an
// upgrade head): the proxy cannot take the connection over without losing something.
std::optional<std::string> take_heads_ahead(int fd);
// Bytes read from `fd` before lws adopted it (a connection the reverse proxy hands back): lws'
// reads get them first, followed here as if they came from the socket, then the socket's own.
// Each read that takes some while more wait tells the sink (on_plaintext_waiting): no POLLIN
// comes for them. lws reads them as it reads a socket, one head at a time and no read past a
// body's end, so a request with a body among them is served as any other (lws 4.1.6 cannot
// take one from a buffer given at adoption). take_heads_ahead takes what is left.
void replay_first(int fd, std::string bytes);
// Whether bytes of replay_first wait for lws.
bool replay_pending(int fd);
// True when reads of `fd` must not reach lws any more (an unmasked frame was seen).
bool blocked(int fd);
// Why (the close code and reason it gets), once blocked; nullopt otherwise.
std::optional<FrameMaskScanner::Violation> violation(int fd);
// The bearer token taken out of the upgrade request's Sec-WebSocket-Protocol (see
// bearer_subprotocol.hpp), once; `only_bearer` tells that no real subprotocol was offered.
std::optional<std::string> take_bearer_token(int fd, bool& only_bearer);
// True when the upgrade request read from `fd` has a Sec-WebSocket-Origin header.
bool sent_sec_websocket_origin(int fd);

}  // namespace mask_guard

}  // namespace wsbridge
