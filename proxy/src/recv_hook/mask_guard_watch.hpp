// Private to the mask guard (mask_guard.cpp, head_follower.cpp): what it keeps per watched
// socket, and the functions the two halves share. mask_guard.cpp has the per-thread tables, the
// frame phase and the interposed recv(); head_follower.cpp follows the HTTP phase (request heads,
// the answers it gives itself, what lws is handed).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "handshake/bearer_subprotocol.hpp"
#include "recv_hook/frame_mask_scanner.hpp"
#include "recv_hook/mask_guard.hpp"

namespace wsbridge::mask_guard::detail {

enum class Phase : std::uint8_t {
  kHead,       // in a request head (or between requests)
  kBody,       // in a request body of a known length: reads end where it ends
  kAwaiting,   // right after a head with Upgrade: lws is deciding
  kLost,       // lws reads what follows in a way not followed here (a body): no upgrade allowed
  kRejected,   // answered 400/431 here; what the client still sends is read and dropped
  kWebSocket,  // frames
};

// What following requests takes; freed once the connection is a WebSocket (or lost).
struct HttpState {
  std::size_t requests = 0;       // complete heads so far
  bool head_read_before = false;  // the current head began in an earlier read
  RequestHeadFilter head{kMaxRequestHeadBytes, kLwsHeaderSpace - 512u};
  std::string head_out;                    // the current head as lws gets it
  std::string last_head;                   // kAwaiting: the head lws may upgrade on
  std::optional<BearerExtraction> bearer;  // kAwaiting: taken out of that head
  bool sec_websocket_origin = false;       // kAwaiting: that head had one
  std::uint64_t body_left = 0;             // kBody: bytes of the body lws has not been given
  bool body_given = false;                 // kBody: lws has been given some of it
};

// Bytes lws is to read before the socket's own (replay_first), from `at` on; never empty.
struct Replay {
  std::string bytes;
  std::size_t at = 0;
  std::size_t left() const { return bytes.size() - at; }
};

struct Watch {
  UnmaskedFrameSink* sink = nullptr;
  const std::string* answer_headers = nullptr;  // watch_http's: lines the guard's answers carry
  Phase phase = Phase::kHead;
  bool blocked = false;
  bool hold_next = false;        // hold_next_request
  bool request_waiting = false;  // a read found the next request while held
  std::unique_ptr<HttpState> http = std::make_unique<HttpState>();  // kHead, kAwaiting
  FrameMaskScanner scanner;                                         // kWebSocket
  // The heads that were not upgrades, as lws got them, until lws reports each (in order: a
  // replayed buffer may hold several): what the reverse proxy takes a connection over with
  // (take_head_bytes). Kept past a head with a body, after which the guard stops following.
  // (A vector: libstdc++'s deque allocates 576 bytes even empty, for every connection.)
  std::vector<std::string> plain_heads;
  std::unique_ptr<Replay> replay;  // (a pointer: most connections never have one)
};

// A head the guard answers itself (400, 414, 431, 501, 505) instead of handing it to lws.
struct Refusal {
  unsigned status = 0;      // 0: none, lws gets the head
  std::string_view reason;  // a static text: the answer's body and the log
  explicit operator bool() const { return status != 0; }
};

// How this thread's current read answers a head itself (reject): the socket's send(), or, for a
// TLS connection, the hook's SSL_write (tls_read_hook.cpp sets it around its guarded_recv call).
extern thread_local ReplySend t_reply_send;

// mask_guard.cpp
void report(int fd, Watch& w);  // an unmasked frame: blocked, the sink told
void lose(Watch& w);            // stops following (the HTTP-phase state freed)

// head_follower.cpp
std::string peer_of(int fd);  // the peer's address, for messages
// The upgrade head was answered with a status and lws reads on: a request head comes next.
void resume_http(Watch& w);
// Counts `available` bytes read in kBody against the body (back to kHead at its end); returns
// how many of them belong to it.
std::size_t take_body(Watch& w, std::size_t available);
// HTTP-phase bytes in `buffer` (room for `capacity`) rewritten for lws (see there).
long http_read(int fd, Watch& w, void* buffer, std::size_t received, std::size_t capacity,
               RawRecv raw = nullptr, int flags = 0);

}  // namespace wsbridge::mask_guard::detail
