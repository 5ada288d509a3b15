// Also, in the HTTP phase, it takes "bearer.<token>" out of Sec-WebSocket-Protocol before lws
// parses the head (bearer_subprotocol.hpp says why).
//
// RFC 6455 5.1: "a server MUST close the connection upon receiving a frame that is not masked".
// libwebsockets 4.1.6 does not check this on the server side (its parser accepts the frame and
// unmasks it with a stale key), so wsbridge checks it below lws: the executable interposes
// recv(), and for the sockets of its own WebSocket connections (on its service thread only)
// follows the frame headers of the client's byte stream. The payload is skipped by length, so the
// cost is a few comparisons per frame, not per byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

struct lws_context;

namespace wsbridge {

// Follows frame boundaries in a client-to-server WebSocket byte stream.
class FrameMaskScanner {
 public:
  // Consumes `len` bytes. Returns how many leading bytes precede the header of the first unmasked
  // frame (len when every frame so far is masked). After a violation, returns 0.
  std::size_t feed(const unsigned char* data, std::size_t len);
  bool violated() const { return state_ == State::kViolated; }

 private:
  enum class State : std::uint8_t {
    kHeader0,
    kHeader1,
    kExtendedLength,
    kMaskKey,
    kPayload,
    kViolated
  };
  State state_ = State::kHeader0;
  unsigned extended_left_ = 0;
  unsigned mask_left_ = 0;
  std::uint64_t payload_left_ = 0;
};

// Receives the news that a watched socket sent an unmasked frame. Called on the service thread,
// from inside lws' read: only record it and wake the loop.
class UnmaskedFrameSink {
 public:
  virtual void on_unmasked_frame(int fd) = 0;

 protected:
  ~UnmaskedFrameSink() = default;
};

namespace mask_guard {
// A server socket was accepted: remember its HTTP request bytes (a client may send its first
// frames right behind the upgrade request, in the same read). Service thread only.
void watch_http(int fd, UnmaskedFrameSink* sink);
// The socket's upgrade completed: check the bytes already read behind the request head, then
// every byte that follows.
void start_websocket(int fd);
// The socket is closing: stop watching it.
void forget(int fd);
// Feeds bytes that recv() returned for `fd`; returns how many of them to hand to lws (fewer
// when an unmasked frame starts inside them), or -1 with errno EAGAIN when none. Exposed for the
// recv() wrapper and for tests.
long after_recv(int fd, void* buffer, long received);
// The last complete request head read from `fd` and the bytes after it, as lws got them (with the
// bearer token already taken out): what a held upgrade replays. Empty when unknown.
std::string take_request_bytes(int fd);
// True when reads of `fd` must not reach lws any more (an unmasked frame was seen).
bool blocked(int fd);
// The bearer token taken out of the request's Sec-WebSocket-Protocol (see bearer_subprotocol.hpp),
// once; `only_bearer` tells that no real subprotocol was offered beside it.
std::optional<std::string> take_bearer_token(int fd, bool& only_bearer);
}  // namespace mask_guard

}  // namespace wsbridge
