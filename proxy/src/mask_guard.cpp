#include "mask_guard.hpp"

#include "bearer_subprotocol.hpp"

#include <dlfcn.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <thread>

namespace wsbridge {

std::size_t FrameMaskScanner::feed(const unsigned char* data, std::size_t len) {
  std::size_t i = 0;
  std::size_t frame_start = 0;
  while (i < len) {
    switch (state_) {
      case State::kViolated:
        return 0;
      case State::kHeader0:
        frame_start = i;
        ++i;
        state_ = State::kHeader1;
        break;
      case State::kHeader1: {
        const unsigned char b = data[i++];
        if ((b & 0x80) == 0) {
          state_ = State::kViolated;
          // Everything before this frame goes to lws; when its first header byte came in an
          // earlier read (frame_start is then 0), nothing more does.
          return frame_start;
        }
        const unsigned len7 = b & 0x7f;
        payload_left_ = len7 < 126 ? len7 : 0;
        extended_left_ = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
        mask_left_ = 4;
        state_ = extended_left_ != 0 ? State::kExtendedLength : State::kMaskKey;
        break;
      }
      case State::kExtendedLength:
        payload_left_ = (payload_left_ << 8) | data[i++];
        if (--extended_left_ == 0) state_ = State::kMaskKey;
        break;
      case State::kMaskKey: {
        const std::size_t take = std::min<std::size_t>(mask_left_, len - i);
        i += take;
        mask_left_ -= static_cast<unsigned>(take);
        if (mask_left_ == 0) state_ = payload_left_ != 0 ? State::kPayload : State::kHeader0;
        break;
      }
      case State::kPayload: {
        const std::uint64_t take = std::min<std::uint64_t>(payload_left_, len - i);
        i += static_cast<std::size_t>(take);
        payload_left_ -= take;
        if (payload_left_ == 0) state_ = State::kHeader0;
        break;
      }
    }
  }
  return len;
}

namespace mask_guard {
namespace {

// Bytes kept from behind the last request head while waiting for the upgrade to complete; lws
// itself reads no more than this before it upgrades.
constexpr std::size_t kMaxPendingBytes = 64 * 1024;

struct Watch {
  std::thread::id service_thread;
  UnmaskedFrameSink* sink = nullptr;
  bool websocket = false;
  bool blocked = false;
  bool unaligned = false;  // the pending bytes overflowed: frame boundaries are unknown
  std::string pending;     // HTTP phase: bytes after the last "\r\n\r\n"
  std::string last_head;   // HTTP phase: the last complete request head (to replay a held one)
  std::optional<BearerExtraction> bearer;  // HTTP phase: taken out of Sec-WebSocket-Protocol
  FrameMaskScanner scanner;                // WebSocket phase
};

// One slot per possible descriptor. Only the service thread that registered a socket reads or
// writes its Watch; other threads (a broker client's, say) see a slot for a descriptor they own
// only if it was never forgotten, and then skip it because the thread differs.
class WatchTable {
 public:
  WatchTable() {
    rlimit limit{};
    std::size_t n = 65536;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_max != RLIM_INFINITY) {
      n = static_cast<std::size_t>(limit.rlim_max);
    }
    size_ = std::min<std::size_t>(n, 1u << 20);
    slots_ = std::make_unique<std::atomic<Watch*>[]>(size_);
  }
  Watch* mine(int fd) const {
    if (fd < 0 || static_cast<std::size_t>(fd) >= size_) return nullptr;
    Watch* w = slots_[fd].load(std::memory_order_acquire);
    return w != nullptr && w->service_thread == std::this_thread::get_id() ? w : nullptr;
  }
  void set(int fd, Watch* w) {
    if (fd < 0 || static_cast<std::size_t>(fd) >= size_) {
      delete w;
      return;
    }
    delete slots_[fd].exchange(w, std::memory_order_acq_rel);
  }

 private:
  std::size_t size_ = 0;
  std::unique_ptr<std::atomic<Watch*>[]> slots_;
};

WatchTable& table() {
  static WatchTable instance;
  return instance;
}

void report(int fd, Watch& w) {
  w.blocked = true;
  if (w.sink != nullptr) w.sink->on_unmasked_frame(fd);
}

}  // namespace

void watch_http(int fd, UnmaskedFrameSink* sink) {
  auto* w = new Watch();
  w->service_thread = std::this_thread::get_id();
  w->sink = sink;
  table().set(fd, w);
}

void start_websocket(int fd) {
  Watch* w = table().mine(fd);
  if (w == nullptr || w->websocket) return;
  w->websocket = true;
  if (w->unaligned) {
    // More than kMaxPendingBytes arrived behind the request head before the upgrade: lws would
    // not have read that far, so this does not happen with lws 4.1; stay out of the way.
    table().set(fd, nullptr);
    return;
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(w->pending.data());
  w->scanner.feed(bytes, w->pending.size());
  w->pending.clear();
  w->pending.shrink_to_fit();
  w->last_head.clear();  // the upgrade is done: nothing will be replayed
  w->last_head.shrink_to_fit();
  if (w->scanner.violated()) report(fd, *w);
}

void forget(int fd) {
  if (table().mine(fd) != nullptr) table().set(fd, nullptr);
}

std::optional<std::string> take_bearer_token(int fd, bool& only_bearer) {
  Watch* w = table().mine(fd);
  if (w == nullptr || !w->bearer) return std::nullopt;
  only_bearer = w->bearer->only_bearer;
  std::optional<std::string> token = std::move(w->bearer->token);
  w->bearer.reset();
  return token;
}

std::string take_request_bytes(int fd) {
  Watch* w = table().mine(fd);
  if (w == nullptr || w->websocket || w->last_head.empty() || w->unaligned) return {};
  std::string bytes = std::move(w->last_head);
  bytes += w->pending;
  w->last_head.clear();
  return bytes;
}

bool blocked(int fd) {
  const Watch* w = table().mine(fd);
  return w != nullptr && w->blocked;
}

long after_recv(int fd, void* buffer, long received) {
  Watch* w = table().mine(fd);
  if (w == nullptr || received <= 0) return received;
  const auto* bytes = static_cast<const unsigned char*>(buffer);
  const auto n = static_cast<std::size_t>(received);
  if (!w->websocket) {
    std::size_t len = n;
    if (auto bearer = extract_bearer_subprotocol(static_cast<char*>(buffer), len)) {
      w->bearer = std::move(bearer);
      received = static_cast<long>(len);
    }
    // Keep what follows the last end of a request head ("\r\n\r\n"); a keep-alive connection
    // may send several requests before the one that upgrades.
    w->pending.append(reinterpret_cast<const char*>(bytes), static_cast<std::size_t>(received));
    const std::size_t end = w->pending.rfind("\r\n\r\n");
    if (end != std::string::npos) {
      w->last_head.assign(w->pending, 0, end + 4);
      if (w->last_head.size() > kMaxPendingBytes) w->last_head.clear();  // lws refused it anyway
      w->pending.erase(0, end + 4);
      w->unaligned = false;
    }
    if (w->pending.size() > kMaxPendingBytes) {
      w->pending.erase(0, w->pending.size() - 3);
      w->unaligned = true;
    }
    return received;
  }
  const std::size_t accepted = w->scanner.feed(bytes, n);
  if (!w->scanner.violated()) return received;
  report(fd, *w);
  if (accepted == 0) {
    errno = EAGAIN;
    return -1;
  }
  return static_cast<long>(accepted);
}

}  // namespace mask_guard
}  // namespace wsbridge

// The interposed recv(): the executable's definition comes first in symbol lookup, so
// libwebsockets' calls land here; everything else passes straight through to the C library's.
extern "C" ssize_t recv(int fd, void* buffer, size_t length, int flags) {
  using RecvFn = ssize_t (*)(int, void*, size_t, int);
  static const auto real_recv = reinterpret_cast<RecvFn>(dlsym(RTLD_NEXT, "recv"));
  if ((flags & MSG_PEEK) == 0 && wsbridge::mask_guard::blocked(fd)) {
    errno = EAGAIN;  // the connection is being closed with 1002; lws gets nothing more from it
    return -1;
  }
  const ssize_t n = real_recv(fd, buffer, length, flags);
  if (n <= 0 || (flags & MSG_PEEK) != 0) return n;
  return wsbridge::mask_guard::after_recv(fd, buffer, n);
}
