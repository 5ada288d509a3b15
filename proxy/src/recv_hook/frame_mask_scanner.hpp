// The frame-boundary follower of the unmasked-frame guard (mask_guard.hpp): RFC 6455 frame headers
// in a client-to-server byte stream, payloads skipped by length.
#pragma once

#include <cstddef>
#include <cstdint>

namespace wsbridge {

// Follows frame boundaries in a client-to-server WebSocket byte stream.
class FrameMaskScanner {
 public:
  // Consumes `len` bytes. Returns how many leading bytes precede the header of the first unmasked
  // frame (len when every frame so far is masked). After a violation, returns 0.
  std::size_t feed(const unsigned char* data, std::size_t len);
  bool violated() const { return state_ == State::kViolated; }
  // The stream cannot be followed (it is not where a frame starts): treat it as violated.
  void fail() { state_ = State::kViolated; }

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

}  // namespace wsbridge
