#include "recv_hook/mask_guard.hpp"

#include <dlfcn.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "recv_hook/mask_guard_watch.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge {

namespace mask_guard {

namespace detail {
thread_local ReplySend t_reply_send = nullptr;

void report(int fd, Watch& w) {
  w.blocked = true;
  if (w.sink != nullptr) w.sink->on_unmasked_frame(fd);
}

void lose(Watch& w) {
  w.phase = Phase::kLost;
  w.http.reset();
}
}  // namespace detail

using namespace detail;  // (this file's half of the guard)

namespace {

// Reads of a rejected connection's remaining request bytes per recv() call.
constexpr int kMaxDrainReads = 16;

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

// The calling thread's table, made on its first watch.
WatchTable& table() {
  if (!t_table) t_table = std::make_unique<WatchTable>();
  return *t_table;
}

// The calling thread's Watch of `fd`, if it watches it.
Watch* mine(int fd) {
  return t_table ? t_table->find(fd) : nullptr;
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

void watch_http(int fd, UnmaskedFrameSink* sink, const std::string* answer_headers) {
  auto w = std::make_unique<Watch>();
  w->sink = sink;
  w->answer_headers = answer_headers;
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

std::uint16_t peer_close_code(int fd) {
  const Watch* w = mine(fd);
  return w != nullptr && w->phase == Phase::kWebSocket ? w->scanner.peer_close_code() : 0;
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
  // (Not while a request waits behind a held one: it would be read again at once, for nothing.)
  if (w != nullptr && w->sink != nullptr && !w->blocked && !w->request_waiting) {
    w->sink->on_plaintext_waiting(fd);
  }
}

void hold_next_request(int fd) {
  Watch* w = mine(fd);
  if (w != nullptr) w->hold_next = true;
}

bool release_next_request(int fd) {
  Watch* w = mine(fd);
  if (w == nullptr) return false;
  const bool waited = w->request_waiting;
  w->hold_next = false;
  w->request_waiting = false;
  return waited;
}

bool request_waiting(int fd) {
  const Watch* w = mine(fd);
  return w != nullptr && w->request_waiting;
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

std::optional<std::string> take_heads_ahead(int fd) {
  Watch* w = mine(fd);
  if (w == nullptr) return std::string();
  // Beyond the heads kept: an upgrade head lws has not reported (take_request_bytes empties
  // it), part of a head, a body lws was given some of (the body of the head just reported, still
  // in the socket, is no concern), or bytes after a head kept where the guard stopped following.
  const bool beyond =
      (w->phase == Phase::kAwaiting && !w->http->last_head.empty()) ||
      (w->phase == Phase::kLost && !w->plain_heads.empty()) ||
      (w->phase == Phase::kHead && w->http->head.bytes_in() > 0) ||
      (w->phase == Phase::kBody && (w->http->body_given || !w->plain_heads.empty()));
  if (beyond) return std::nullopt;
  std::string ahead;
  for (const std::string& head : w->plain_heads) ahead += head;
  w->plain_heads.clear();
  if (w->replay) {
    ahead.append(w->replay->bytes, w->replay->at);
    w->replay.reset();
  }
  return ahead;
}

std::string take_request_bytes(int fd) {
  Watch* w = mine(fd);
  if (w == nullptr || w->phase != Phase::kAwaiting) return {};
  return std::exchange(w->http->last_head, {});
}

void replay_first(int fd, std::string bytes) {
  Watch* w = mine(fd);
  if (w == nullptr || bytes.empty()) return;
  w->replay = std::make_unique<Replay>(Replay{std::move(bytes)});
}

bool replay_pending(int fd) {
  const Watch* w = mine(fd);
  return w != nullptr && w->replay != nullptr;
}

bool blocked(int fd) {
  const Watch* w = mine(fd);
  return w != nullptr && w->blocked;
}

std::optional<FrameMaskScanner::Violation> violation(int fd) {
  const Watch* w = mine(fd);
  if (w == nullptr || !w->blocked) return std::nullopt;
  return w->scanner.violation();
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

namespace {

thread_local RawRecv t_socket_recv = nullptr;  // what replayed_recv reads once the replay is out

// A RawRecv that gives the watch's replay first (replay_first), then reads the socket.
ssize_t replayed_recv(int fd, void* buffer, std::size_t length, int flags) {
  Watch* w = mine(fd);
  if (w == nullptr || !w->replay) return t_socket_recv(fd, buffer, length, flags);
  Replay& r = *w->replay;
  const std::size_t n = std::min(length, r.left());
  std::memcpy(buffer, r.bytes.data() + r.at, n);
  if ((flags & MSG_PEEK) == 0) {
    r.at += n;
    if (r.left() == 0) w->replay.reset();
  }
  return static_cast<ssize_t>(n);
}

}  // namespace

ssize_t guarded_recv(int fd, void* buffer, std::size_t length, int flags, RawRecv raw,
                     ReplySend reply_send) {
  const Watch* w = mine(fd);
  const std::size_t replay_before = w != nullptr && w->replay ? w->replay->left() : 0;
  if (replay_before > 0) {
    t_socket_recv = raw;
    raw = replayed_recv;
  }
  t_reply_send = reply_send;
  const ssize_t n = guarded_recv_step(fd, buffer, length, flags, raw);
  t_reply_send = nullptr;
  if (replay_before > 0) {
    // Only after a read that took some: one that took none (lws is not to read now) must not
    // make lws read again at once, and again.
    w = mine(fd);
    if (w != nullptr && w->replay && w->replay->left() < replay_before && w->sink != nullptr) {
      w->sink->on_plaintext_waiting(fd);
    }
  }
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
  if (w->hold_next && w->phase == Phase::kHead && w->http->head.bytes_in() == 0) {
    char next = 0;
    const ssize_t n = raw(fd, &next, 1, flags | MSG_PEEK);
    if (n <= 0) return n;  // the end of the stream (or nothing yet): as it is
    if (!w->request_waiting) {
      w->request_waiting = true;
      if (w->sink != nullptr) w->sink->on_request_waiting(fd);
    }
    errno = EAGAIN;
    return -1;
  }
  if (w->phase == Phase::kBody) {
    // No read past the body's end (head_follower.cpp, end_of_head, says why).
    const auto wanted =
        static_cast<std::size_t>(std::min<std::uint64_t>(length, w->http->body_left));
    const ssize_t n = raw(fd, buffer, wanted, flags);
    if (n > 0) take_body(*w, static_cast<std::size_t>(n));
    return n;
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
