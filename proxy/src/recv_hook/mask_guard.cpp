#include "recv_hook/mask_guard.hpp"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "handshake/bearer_subprotocol.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge {

namespace mask_guard {
namespace {

// Heads kept for take_head_bytes beyond those lws has reported (pipelined in one buffer).
constexpr std::size_t kMaxHeadsAhead = 16;
// Reads of a rejected connection's remaining request bytes per recv() call.
constexpr int kMaxDrainReads = 16;

enum class Phase : std::uint8_t {
  kHead,       // in a request head (or between requests)
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
};

struct Watch {
  UnmaskedFrameSink* sink = nullptr;
  Phase phase = Phase::kHead;
  bool blocked = false;
  std::unique_ptr<HttpState> http = std::make_unique<HttpState>();  // kHead, kAwaiting
  FrameMaskScanner scanner;                                         // kWebSocket
  // The heads that were not upgrades, as lws got them, until lws reports each (in order: a
  // replayed buffer may hold several): what the reverse proxy takes a connection over with
  // (take_head_bytes). Kept past a head with a body, after which the guard stops following.
  // (A vector: libstdc++'s deque allocates 576 bytes even empty, for every connection.)
  std::vector<std::string> plain_heads;
};

// One slot per possible descriptor, per service thread: each shard watches the sockets it
// accepted in a table of its own, so no Watch is ever seen by two threads. (One table for the
// process let a shard that had just accepted a descriptor another shard was closing replace that
// shard's Watch under it, and the closing shard's forget() then removed the new one.) Threads that
// watch nothing (a broker client's, say) have no table and pass straight through.
class WatchTable {
 public:
  WatchTable() {
    rlimit limit{};
    std::size_t n = 65536;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_max != RLIM_INFINITY) {
      n = static_cast<std::size_t>(limit.rlim_max);
    }
    slots_.resize(std::min<std::size_t>(n, 1u << 20));
  }
  Watch* find(int fd) const {
    return fd >= 0 && static_cast<std::size_t>(fd) < slots_.size() ? slots_[fd].get() : nullptr;
  }
  void set(int fd, std::unique_ptr<Watch> w) {
    if (fd >= 0 && static_cast<std::size_t>(fd) < slots_.size()) slots_[fd] = std::move(w);
  }

 private:
  std::vector<std::unique_ptr<Watch>> slots_;
};

thread_local std::unique_ptr<WatchTable> t_table;

// How this thread's current read answers a head itself (reject): the socket's send(), or, for a
// TLS connection, the hook's SSL_write (tls_read_hook.cpp sets it around its guarded_recv call).
thread_local ReplySend t_reply_send = nullptr;

// The calling thread's table, made on its first watch.
WatchTable& table() {
  if (!t_table) t_table = std::make_unique<WatchTable>();
  return *t_table;
}

// The calling thread's Watch of `fd`, if it watches it.
Watch* mine(int fd) {
  return t_table ? t_table->find(fd) : nullptr;
}

void report(int fd, Watch& w) {
  w.blocked = true;
  if (w.sink != nullptr) w.sink->on_unmasked_frame(fd);
}

void lose(Watch& w) {
  w.phase = Phase::kLost;
  w.http.reset();
}

std::string peer_of(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  char text[INET6_ADDRSTRLEN] = "?";
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    if (addr.ss_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, text, sizeof text);
    } else if (addr.ss_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr, text, sizeof text);
    }
  }
  return text;
}

enum class Verdict : std::uint8_t { kPass, kTooLarge, kMalformed };

void end_of_head(Watch& w) {
  const HeadSummary& s = w.http->head.summary();
  ++w.http->requests;
  const bool websocket = s.upgrade && !s.connect;
  if (websocket) {
    w.phase = Phase::kAwaiting;
    w.http->last_head = std::move(w.http->head_out);
    w.http->bearer = s.bearer;
    w.http->sec_websocket_origin = s.sec_websocket_origin;
  } else {
    // (Bounded: lws reads a next head only after answering the one before.)
    if (w.plain_heads.size() >= kMaxHeadsAhead) w.plain_heads.erase(w.plain_heads.begin());
    w.plain_heads.push_back(std::move(w.http->head_out));
  }
  if (!websocket && (s.has_body || s.connect)) {
    // lws 4.1.6 delimits bodies its own way (a static file's GET leaves its body to be read as
    // the next request; a POST without Content-Length runs 100 MiB): stop following.
    lose(w);
    return;
  }
  w.http->head.reset();
  w.http->head_out.clear();
  w.http->head_read_before = false;
}

// Follows HTTP-phase bytes and appends to `out` what lws is to get. kTooLarge / kMalformed stop
// there (out holds what came before the head that failed). With `used`, stops at the end of the
// first head and sets how many bytes that took.
Verdict follow_http(Watch& w, const char* data, std::size_t len, std::string& out,
                    std::size_t* used = nullptr) {
  std::size_t i = 0;
  while (i < len) {
    // Bytes right behind an upgrade head reach lws before it decides only when they were handed
    // to it some other way (after_recv): where frames would start is then not known for sure.
    if (w.phase == Phase::kAwaiting) lose(w);
    if (w.phase != Phase::kHead) {
      out.append(data + i, len - i);
      break;
    }
    std::size_t consumed = 0;
    const std::size_t before = out.size();
    const auto r = w.http->head.feed(data + i, len - i, &out, consumed);
    w.http->head_out.append(out, before);
    i += consumed;
    switch (r) {
      case RequestHeadFilter::Result::kMore:
        break;
      case RequestHeadFilter::Result::kEnd:
        end_of_head(w);
        if (used != nullptr) {
          *used = i;
          return Verdict::kPass;
        }
        break;
      case RequestHeadFilter::Result::kTooLarge:
      case RequestHeadFilter::Result::kMalformed:
        out.resize(before);
        if (used != nullptr) *used = i;
        return r == RequestHeadFilter::Result::kTooLarge ? Verdict::kTooLarge : Verdict::kMalformed;
    }
  }
  if (used != nullptr) *used = len;
  return Verdict::kPass;
}

// The upgrade head was answered with a status and lws reads on: a request head comes next.
void resume_http(Watch& w) {
  w.http->last_head.clear();
  w.http->bearer.reset();
  w.phase = Phase::kHead;
}

// Answers a head lws must not see with `status` and closes our side; the client's FIN (or the
// handshake timeout) ends the connection, so the answer is not lost to a reset.
void reject(int fd, Watch& w, Verdict verdict) {
  const bool too_large = verdict == Verdict::kTooLarge;
  const std::string body =
      too_large ? "the request head is over " + std::to_string(kMaxRequestHeadBytes) + " bytes\n"
                : "malformed request head\n";
  const std::string reply =
      std::string(too_large ? "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                            : "HTTP/1.1 400 Bad Request\r\n") +
      "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n" + body;
  WSB_LOG(kInfo) << "refused a request from " << peer_of(fd) << " with "
                 << (too_large ? "431: its head is over " + std::to_string(kMaxRequestHeadBytes) +
                                     " bytes"
                               : std::string("400: malformed head"));
  if (t_reply_send != nullptr) {
    t_reply_send(fd, reply);
  } else {
    [[maybe_unused]] const ssize_t sent =
        ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  ::shutdown(fd, SHUT_WR);
  lose(w);
  w.phase = Phase::kRejected;
}

// HTTP-phase bytes in `buffer` (room for `capacity`): rewrites them for lws. With `raw`, the
// bytes were only peeked at: the ones up to the end of the head are read now and the rest stay
// in the socket, so that lws never holds bytes from behind an upgrade head before it decides on
// it (lws 4.1.6 also overwrites such bytes with its 101 answer: its serv_buf is the scratch).
long http_read(int fd, Watch& w, void* buffer, std::size_t received, std::size_t capacity,
               RawRecv raw = nullptr, int flags = 0) {
  std::string out;
  out.reserve(received + RequestHeadFilter::kMaxHeldBytes);
  std::size_t used = received;
  const auto verdict = follow_http(w, static_cast<const char*>(buffer), received, out,
                                   raw != nullptr ? &used : nullptr);
  if (verdict != Verdict::kPass) {
    // Safe to answer when lws has written nothing for an earlier request that may still be
    // going out: this is the first request, or lws has parsed part of this head already (lws
    // reads again only once it has used what it read, and parses a head only after finishing
    // the previous response).
    if (w.http->requests == 0 || w.http->head_read_before) {
      reject(fd, w, verdict);
      errno = EAGAIN;
      return -1;
    }
    WSB_LOG(kInfo) << "closed the connection of " << peer_of(fd) << ": a pipelined request "
                   << (verdict == Verdict::kTooLarge ? "head too large" : "head malformed");
    lose(w);
    return 0;  // lws sees the end of the stream and closes
  }
  if (raw != nullptr && raw(fd, buffer, used, flags) != static_cast<ssize_t>(used)) {
    lose(w);  // cannot happen: this thread alone reads the socket
    return 0;
  }
  if (w.phase == Phase::kHead) w.http->head_read_before = w.http->head.bytes_in() > 0;
  if (out.size() > capacity) {  // cannot happen: the filter never puts out more than it held
    lose(w);
    return 0;
  }
  std::memcpy(buffer, out.data(), out.size());
  if (out.empty()) {
    errno = EAGAIN;  // all of it held back until the line goes on
    return -1;
  }
  return static_cast<long>(out.size());
}

long frames_read(int fd, Watch& w, void* buffer, long received) {
  const std::size_t accepted =
      w.scanner.feed(static_cast<unsigned char*>(buffer), static_cast<std::size_t>(received));
  if (!w.scanner.violated()) return received;
  report(fd, w);
  if (accepted == 0) {
    errno = EAGAIN;
    return -1;
  }
  return static_cast<long>(accepted);
}

}  // namespace

void watch_http(int fd, UnmaskedFrameSink* sink) {
  auto w = std::make_unique<Watch>();
  w->sink = sink;
  table().set(fd, std::move(w));
}

void start_websocket(int fd) {
  Watch* w = mine(fd);
  if (w == nullptr || w->phase == Phase::kWebSocket) return;
  const bool aligned = w->phase == Phase::kAwaiting;
  lose(*w);  // frees the HTTP-phase state
  w->phase = Phase::kWebSocket;
  if (!aligned) {
    WSB_LOG(kInfo) << "a WebSocket upgrade from " << peer_of(fd)
                   << " after a request whose end is not known here: closing it with 1002";
    w->scanner.fail();
    report(fd, *w);
  }
}

void accept_compressed(int fd) {
  Watch* w = mine(fd);
  if (w != nullptr && w->phase == Phase::kWebSocket) w->scanner.accept_compressed();
}

bool take_compressed(int fd) {
  Watch* w = mine(fd);
  return w != nullptr && w->phase == Phase::kWebSocket && w->scanner.take_compressed();
}

bool answer_may_be_due(int fd) {
  const Watch* w = mine(fd);
  return w == nullptr || w->phase != Phase::kWebSocket || w->scanner.violated() ||
         w->scanner.answer_due();
}

void answers_flushed(int fd) {
  Watch* w = mine(fd);
  if (w != nullptr && w->phase == Phase::kWebSocket) w->scanner.answered();
}

void upgrade_refused(int fd) {
  Watch* w = mine(fd);
  if (w != nullptr && w->phase == Phase::kAwaiting) resume_http(*w);
}

void plaintext_waiting(int fd) {
  Watch* w = mine(fd);
  if (w != nullptr && w->sink != nullptr && !w->blocked) w->sink->on_plaintext_waiting(fd);
}

void forget(int fd) {
  if (mine(fd) != nullptr) table().set(fd, nullptr);
}

std::optional<std::string> take_bearer_token(int fd, bool& only_bearer) {
  Watch* w = mine(fd);
  if (w == nullptr || !w->http || !w->http->bearer) return std::nullopt;
  only_bearer = w->http->bearer->only_bearer;
  std::optional<std::string> token = std::move(w->http->bearer->token);
  w->http->bearer.reset();
  return token;
}

bool sent_sec_websocket_origin(int fd) {
  const Watch* w = mine(fd);
  return w != nullptr && w->phase == Phase::kAwaiting && w->http->sec_websocket_origin;
}

std::string take_head_bytes(int fd) {
  Watch* w = mine(fd);
  if (w == nullptr || w->plain_heads.empty()) return {};
  std::string head = std::move(w->plain_heads.front());
  w->plain_heads.erase(w->plain_heads.begin());
  return head;
}

std::string take_request_bytes(int fd) {
  Watch* w = mine(fd);
  if (w == nullptr || w->phase != Phase::kAwaiting) return {};
  return std::exchange(w->http->last_head, {});
}

bool blocked(int fd) {
  const Watch* w = mine(fd);
  return w != nullptr && w->blocked;
}

long after_recv(int fd, void* buffer, long received) {
  Watch* w = mine(fd);
  if (w == nullptr || received <= 0) return received;
  if (w->phase == Phase::kAwaiting) resume_http(*w);  // lws read on: the upgrade was refused
  switch (w->phase) {
    case Phase::kWebSocket:
      return frames_read(fd, *w, buffer, received);
    case Phase::kLost:
      return received;
    case Phase::kRejected:
      errno = EAGAIN;
      return -1;
    default:
      return http_read(fd, *w, buffer, static_cast<std::size_t>(received),
                       static_cast<std::size_t>(received));
  }
}

static ssize_t guarded_recv_step(int fd, void* buffer, std::size_t length, int flags, RawRecv raw);

ssize_t guarded_recv(int fd, void* buffer, std::size_t length, int flags, RawRecv raw,
                     ReplySend reply_send) {
  t_reply_send = reply_send;
  const ssize_t n = guarded_recv_step(fd, buffer, length, flags, raw);
  t_reply_send = nullptr;
  return n;
}

static ssize_t guarded_recv_step(int fd, void* buffer, std::size_t length, int flags, RawRecv raw) {
  Watch* w = (flags & MSG_PEEK) != 0 ? nullptr : mine(fd);
  if (w == nullptr) return raw(fd, buffer, length, flags);
  if (w->blocked) {
    errno = EAGAIN;  // the connection is being closed with 1002; lws gets nothing more from it
    return -1;
  }
  // lws reads again only after it has used everything it read before: an upgrade head it did
  // not upgrade on (and did not close for) was answered as HTTP.
  if (w->phase == Phase::kAwaiting) resume_http(*w);
  if (w->phase == Phase::kRejected) {
    for (int i = 0; i < kMaxDrainReads; ++i) {
      const ssize_t n = raw(fd, buffer, length, flags);
      if (n <= 0) return n;  // 0: the client has read the answer and gone; lws closes
    }
    errno = EAGAIN;
    return -1;
  }
  if (w->phase != Phase::kHead) {
    const ssize_t n = raw(fd, buffer, length, flags);
    if (n <= 0 || w->phase == Phase::kLost) return n;
    return frames_read(fd, *w, buffer, static_cast<long>(n));
  }
  // The filter may put out the bytes it holds back together with the new ones: leave room.
  const std::size_t held = w->http->head.held();
  if (length <= held) return 0;  // lws reads at least 4 KiB in this phase; never happens
  const ssize_t n = raw(fd, buffer, length - held, flags | MSG_PEEK);
  if (n <= 0) return n;
  return http_read(fd, *w, buffer, static_cast<std::size_t>(n), length, raw, flags);
}

}  // namespace mask_guard
}  // namespace wsbridge

// The interposed recv(): the executable's definition comes first in symbol lookup, so
// libwebsockets' calls land here; everything else passes straight through to the C library's.
extern "C" ssize_t recv(int fd, void* buffer, size_t length, int flags) {
  static const auto real_recv =
      reinterpret_cast<wsbridge::mask_guard::RawRecv>(dlsym(RTLD_NEXT, "recv"));
  return wsbridge::mask_guard::guarded_recv(fd, buffer, length, flags, real_recv);
}
