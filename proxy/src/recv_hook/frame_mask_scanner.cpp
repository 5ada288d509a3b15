// Follows the frame headers of a client-to-server WebSocket byte stream to find the first unmasked
// frame (the scanner mask_guard.cpp runs on each watched socket).
#include "recv_hook/frame_mask_scanner.hpp"

#include <algorithm>

namespace wsbridge {

bool FrameMaskScanner::take_compressed() {
  if (flags_head_ >= message_flags_.size()) return false;
  const bool compressed = message_flags_[flags_head_++] != 0;
  if (flags_head_ == message_flags_.size()) {
    std::vector<std::uint8_t>().swap(message_flags_);  // an idle connection keeps nothing
    flags_head_ = 0;
  }
  return compressed;
}

std::size_t FrameMaskScanner::feed(unsigned char* data, std::size_t len) {
  std::size_t i = 0;
  std::size_t frame_start = 0;
  while (i < len) {
    switch (state_) {
      case State::kViolated:
        return 0;
      case State::kHeader0: {
        frame_start = i;
        const unsigned opcode = data[i] & 0x0f;
        if (opcode == 0x8 || opcode == 0x9) answer_due_ = true;        // close, PING
        if (accept_compressed_ && (opcode == 0x1 || opcode == 0x2)) {  // a data message begins
          const bool compressed = (data[i] & 0x40) != 0;
          message_flags_.push_back(compressed ? 1 : 0);
          if (compressed) data[i] &= static_cast<unsigned char>(~0x40);
        }
        ++i;
        state_ = State::kHeader1;
        break;
      }
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

}  // namespace wsbridge
