// The frame-boundary follower of the unmasked-frame guard (mask_guard.hpp): RFC 6455 frame headers
// in a client-to-server byte stream, payloads skipped by length.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace wsbridge {

// Follows frame boundaries in a client-to-server WebSocket byte stream.
//
// With shared permessage-deflate (compression/shared_deflate.hpp) it also takes RSV1 off the first
// frame of each compressed data message before lws parses it: lws 4.1.6 refuses RSV bits on a
// connection where it negotiated no extension of its own, and here the session inflates the
// message. Whether each data message was compressed is queued, in order, for the session to take
// when that message begins. RSV1 on a data message's first frame of a connection without the
// extension is left for lws to refuse with 1002, as RFC 7692 6.1 asks.
//
// It also checks what lws 4.1.6 lets through or drops without a close frame: a control frame
// over 125 bytes (lws dropped the connection), a close frame's payload (lws echoed a 1-byte
// payload, codes no endpoint may send, and a reason that is not UTF-8 back to the client), RSV1
// on a control or continuation frame (lws' own permessage-deflate, while wsbridge used it, took
// it), and a 64-bit length with its top bit set (dropped without a close frame). Such a frame is
// a violation like an unmasked one, with its own close code and reason.
class FrameMaskScanner {
 public:
  // Why the stream was refused: the close the connection gets.
  struct Violation {
    std::uint16_t code = 1002;
    const char* reason = "";
  };
  // Consumes `len` bytes, rewriting RSV1 in place as above. Returns how many leading bytes
  // precede the header of the first unmasked frame (len when every frame so far is masked).
  // After a violation, returns 0.
  std::size_t feed(unsigned char* data, std::size_t len);
  bool violated() const { return state_ == State::kViolated; }
  Violation violation() const;
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

  // The code of the client's first close frame (0: none yet). lws 4.1.6 takes the codes
  // registered after it was written (1012-1014) for invalid and replaces them with 1002 in the
  // payload it echoes: the server puts the client's own back (shard/callback.cpp).
  std::uint16_t peer_close_code() const { return peer_close_code_; }

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
  enum class Why : std::uint8_t {
    kUnmasked,
    kControlTooLong,
    kCloseOneByte,
    kCloseCode,
    kCloseReason,
    kRsv1OutOfPlace,
    kLengthTopBit,
  };
  // A close frame's payload, unmasked as it comes (checked at its end); only while one comes.
  struct ClosePayload {
    unsigned char mask[4] = {};
    unsigned char bytes[125] = {};
    std::uint8_t size = 0;
  };
  std::size_t violate(Why why, std::size_t frame_start);
  void check_close_payload();

  State state_ = State::kHeader0;
  Why why_ = Why::kUnmasked;
  bool in_close_ = false;  // the frame being followed is a close frame
  bool control_ = false;   // ... a control frame
  std::unique_ptr<ClosePayload> close_;
  unsigned extended_left_ = 0;
  unsigned mask_left_ = 0;
  std::uint64_t payload_left_ = 0;
  bool accept_compressed_ = false;
  bool answer_due_ = false;
  std::uint16_t peer_close_code_ = 0;
  // One byte per data message begun (1: compressed), taken from flags_head_ on; empty (and
  // unallocated) while nothing is queued, which is most of the time.
  std::vector<std::uint8_t> message_flags_;
  std::size_t flags_head_ = 0;
};

}  // namespace wsbridge
