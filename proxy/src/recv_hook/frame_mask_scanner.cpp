// Follows the frame headers of a client-to-server WebSocket byte stream to find the first unmasked
// frame (the scanner mask_guard.cpp runs on each watched socket).
#include "recv_hook/frame_mask_scanner.hpp"

#include <algorithm>
#include <string_view>

#include "wsbridge/utf8.hpp"

namespace wsbridge {

namespace {

// RFC 6455 7.4: what a close frame may carry. 1004-1006 and 1015 are never sent; the rest below
// 3000 is the protocol's, defined or not yet (1012-1014 are registered with IANA).
bool sendable_close_code(unsigned code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

}  // namespace

FrameMaskScanner::Violation FrameMaskScanner::violation() const {
  switch (why_) {
    case Why::kUnmasked:
      return {1002, "client frames must be masked"};
    case Why::kControlTooLong:
      return {1002, "a control frame over 125 bytes"};
    case Why::kCloseOneByte:
      return {1002, "a close frame with a 1-byte payload"};
    case Why::kCloseCode:
      return {1002, "a close code that may not be sent"};
    case Why::kCloseReason:
      return {1007, "a close reason that is not UTF-8"};
    case Why::kRsv1OutOfPlace:
      return {1002, "rsv1 on a control or continuation frame"};
    case Why::kLengthTopBit:
      return {1002, "a 64-bit frame length with its top bit set"};
  }
  return {};
}

std::size_t FrameMaskScanner::violate(Why why, std::size_t frame_start) {
  state_ = State::kViolated;
  why_ = why;
  close_.reset();
  // Everything before this frame goes to lws; when its first header byte came in an earlier
  // read (frame_start is then 0), nothing more does.
  return frame_start;
}

void FrameMaskScanner::check_close_payload() {
  const ClosePayload& c = *close_;
  const unsigned code = static_cast<unsigned>(c.bytes[0]) << 8 | c.bytes[1];
  const std::string_view reason(reinterpret_cast<const char*>(c.bytes) + 2, c.size - 2u);
  if (!sendable_close_code(code)) {
    why_ = Why::kCloseCode;
    state_ = State::kViolated;
  } else if (!is_valid_utf8(reason)) {
    why_ = Why::kCloseReason;
    state_ = State::kViolated;
  } else if (peer_close_code_ == 0) {
    peer_close_code_ = static_cast<std::uint16_t>(code);
  }
  close_.reset();
}

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
        // RFC 7692 6.1: RSV1 marks a compressed message on its first frame only. Refused here
        // with the other violations, whatever lws would do: its own extension (what
        // per_connection was) let it through on PINGs and continuations.
        if ((data[i] & 0x40) != 0 && ((opcode & 0x8) != 0 || opcode == 0x0)) {
          return violate(Why::kRsv1OutOfPlace, frame_start);
        }
        if (opcode == 0x8 || opcode == 0x9) answer_due_ = true;  // close, PING
        in_close_ = opcode == 0x8;
        control_ = (opcode & 0x8) != 0;
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
        if ((b & 0x80) == 0) return violate(Why::kUnmasked, frame_start);
        const unsigned len7 = b & 0x7f;
        if (control_ && len7 > 125) return violate(Why::kControlTooLong, frame_start);
        if (in_close_ && len7 == 1) return violate(Why::kCloseOneByte, frame_start);
        if (in_close_ && len7 >= 2) close_ = std::make_unique<ClosePayload>();
        payload_left_ = len7 < 126 ? len7 : 0;
        extended_left_ = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
        mask_left_ = 4;
        state_ = extended_left_ != 0 ? State::kExtendedLength : State::kMaskKey;
        break;
      }
      case State::kExtendedLength:
        // RFC 6455 5.2: the most significant bit of a 64-bit length must be 0 (lws dropped such
        // a frame's connection without a close frame).
        if (extended_left_ == 8 && (data[i] & 0x80) != 0) {
          return violate(Why::kLengthTopBit, frame_start);
        }
        payload_left_ = (payload_left_ << 8) | data[i++];
        if (--extended_left_ == 0) state_ = State::kMaskKey;
        break;
      case State::kMaskKey: {
        const std::size_t take = std::min<std::size_t>(mask_left_, len - i);
        if (close_) std::copy_n(data + i, take, close_->mask + (4 - mask_left_));
        i += take;
        mask_left_ -= static_cast<unsigned>(take);
        if (mask_left_ == 0) state_ = payload_left_ != 0 ? State::kPayload : State::kHeader0;
        break;
      }
      case State::kPayload: {
        const std::uint64_t take = std::min<std::uint64_t>(payload_left_, len - i);
        if (close_) {
          for (std::size_t k = 0; k < take; ++k, ++close_->size) {
            close_->bytes[close_->size] = data[i + k] ^ close_->mask[close_->size % 4];
          }
        }
        i += static_cast<std::size_t>(take);
        payload_left_ -= take;
        if (payload_left_ == 0) {
          state_ = State::kHeader0;
          if (close_) check_close_payload();
          if (state_ == State::kViolated) return frame_start;
        }
        break;
      }
    }
  }
  return len;
}

}  // namespace wsbridge
