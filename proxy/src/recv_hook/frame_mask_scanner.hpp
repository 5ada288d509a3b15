// The frame-boundary follower of the unmasked-frame guard (mask_guard.hpp): RFC 6455 frame headers
// in a client-to-server byte stream, payloads skipped by length.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace wsbridge {

// Follows frame boundaries in a client-to-server WebSocket byte stream.
//
// With shared permessage-deflate (compression/shared_deflate.hpp) it also takes RSV1 off the first
// frame of each compressed data message before lws parses it: lws 4.1.6 refuses RSV bits on a
// connection where it negotiated no extension of its own, and here the session inflates the
// message. Whether each data message was compressed is queued, in order, for the session to take
// when that message begins. RSV1 anywhere else (a control or continuation frame, a connection
// without the extension) is left for lws to refuse with 1002, as RFC 7692 6.1 asks.
class FrameMaskScanner {
 public:
  // Consumes `len` bytes, rewriting RSV1 in place as above. Returns how many leading bytes
  // precede the header of the first unmasked frame (len when every frame so far is masked).
  // After a violation, returns 0.
  std::size_t feed(unsigned char* data, std::size_t len);
  bool violated() const { return state_ == State::kViolated; }
  // The stream cannot be followed (it is not where a frame starts): treat it as violated.
  void fail() { state_ = State::kViolated; }

  // permessage-deflate was agreed in the shared mode: compressed messages are expected.
  void accept_compressed() { accept_compressed_ = true; }
  // Whether the next data message (in the order they began) came compressed; false when none
  // is queued (nothing was agreed).
  bool take_compressed();

  // A PING or close frame began since answered(): lws answers those by itself, from its next
  // POLLOUT turn, so until then nothing may be written to the socket outside lws' turn (a
  // frame left partly written there would have lws' answer land inside it).
  bool answer_due() const { return answer_due_; }
  void answered() { answer_due_ = false; }

  // Data messages begun and not yet taken (a bound for tests).
  std::size_t queued() const { return message_flags_.size() - flags_head_; }

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
  bool accept_compressed_ = false;
  bool answer_due_ = false;
  // One byte per data message begun (1: compressed), taken from flags_head_ on; empty (and
  // unallocated) while nothing is queued, which is most of the time.
  std::vector<std::uint8_t> message_flags_;
  std::size_t flags_head_ = 0;
};

}  // namespace wsbridge
