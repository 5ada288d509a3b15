// One HTTP response of a fallback session, between two service threads: the session's shard (the
// owner, which decides what the response says) and the shard whose connection carries the request
// (the carrier, which writes it). They are the same shard when the request landed there; a
// request may land on any shard (SO_REUSEPORT) or arrive on an HTTP/2 connection carrying other
// requests, so the session never moves: its bytes do.
//
// The owner appends bytes while the channel has room, and ends it; the carrier takes bytes as its
// socket can write them, and says when its request is gone. Each side wakes the other through
// its shard's inbox (`wake_*`).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace wsbridge::fallback {

// What a channel holds unwritten before its owner stops filling it: enough to keep a socket busy,
// little enough that a stalled stream leaves its frames in the session's queue, where the
// slow-consumer policy sees them.
inline constexpr std::size_t kChannelCapacity = 256 * 1024;

enum class ResponseKind : std::uint8_t {
  kStream,  // SSE: headers at once, bytes as they come, ended by the owner
  kWhole,   // a poll's or a POST's answer: status, headers and body once ended
};

class ResponseChannel : public std::enable_shared_from_this<ResponseChannel> {
 public:
  // `headroom`: spare bytes in front of what take() returns (lws writes need LWS_PRE there), so
  // the carrier writes the taken buffer as it is.
  ResponseChannel(ResponseKind kind, std::size_t capacity, std::size_t headroom = 0)
      : kind_(kind), capacity_(capacity), headroom_(headroom) {}

  ResponseKind kind() const { return kind_; }

  // Owner: room for more bytes now?
  bool has_room() const;
  // Owner: appends bytes (a stream), false when the carrier is gone.
  bool append(std::string_view bytes);
  // Owner: the response is complete: `status` and `content_type` for a whole response.
  void end(unsigned status = 200, std::string content_type = {});
  // Owner: `body` as the whole response, in one step (a stream's carrier must not take its
  // first bytes before it knows the status: they would go out under a 200).
  void answer(unsigned status, std::string content_type, std::string_view body);

  struct Taken {
    std::string bytes;  // the channel's headroom, then the bytes taken
    std::size_t headroom = 0;
    std::string_view body() const { return std::string_view(bytes).substr(headroom); }
    bool ended = false;       // nothing follows these bytes
    bool room_again = false;  // the owner was waiting for room: wake it
    unsigned status = 200;
    std::string content_type;
  };
  // Spare bytes after what take() returns: the carrier ends a chunk of a chunked body there
  // ("\r\n", and "0\r\n\r\n" after the last) without growing the buffer.
  static constexpr std::size_t kTailRoom = 8;
  // Carrier: what there is to write: up to `max_bytes` of a stream, a whole response all at once
  // and only once ended.
  Taken take(std::size_t max_bytes);
  // Carrier: the request is gone; the owner's next append fails.
  void abandon();
  bool abandoned() const;
  // Carrier: the owner has ended the response (what is left of it may still be unwritten).
  bool ended() const;

  // Set by whoever creates the channel, called by the other side (outside the lock).
  std::function<void()> wake_carrier;
  std::function<void()> wake_owner;

 private:
  void reserve_for(std::size_t more);  // with the lock held: room for `more` and the tail room
  // With the lock held: the bytes to write.
  std::size_t pending() const { return bytes_.empty() ? 0 : bytes_.size() - headroom_; }

  const ResponseKind kind_;
  const std::size_t capacity_;
  const std::size_t headroom_;
  mutable std::mutex mutex_;
  std::string bytes_;       // guarded: empty, or headroom_ spare bytes then the bytes to write
  bool ended_ = false;      // guarded
  bool abandoned_ = false;  // guarded
  mutable bool owner_waiting_ = false;  // guarded: has_room() said no
  unsigned status_ = 200;               // guarded
  std::string content_type_;            // guarded
};

}  // namespace wsbridge::fallback
