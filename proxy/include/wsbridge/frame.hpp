// A WebSocket message as adapters and the core pass it around: an immutable, reference-counted
// byte buffer plus a text/binary flag. Copying a Frame copies a pointer, so one message fanned out
// to many sessions is built once and shared.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace wsbridge {

// Bytes reserved in front of every payload so the service thread can write the WebSocket frame
// header in place (libwebsockets' LWS_PRE, checked against this at compile time in the core).
inline constexpr std::size_t kFrameHeadroom = 16;

enum class FrameKind : unsigned char { kText, kBinary };

// Another wire form of a frame's payload, for one permessage-deflate parameter set: built once,
// by whichever thread first needs it, and shared by every session that uses the same set
// (compression/shared_deflate.hpp). Immutable once published.
struct FrameVariant {
  std::uint16_t key = 0;
  bool compressed = false;  // false: deflating did not make it smaller; send the payload as it is
  std::string bytes;        // kFrameHeadroom bytes, then the compressed payload
  FrameVariant* next = nullptr;
};

class Frame {
 public:
  Frame() : Frame(FrameKind::kText, std::string_view{}) {}
  Frame(FrameKind kind, std::string_view payload);

  static Frame text(std::string_view payload) { return Frame(FrameKind::kText, payload); }
  static Frame binary(std::string_view payload) { return Frame(FrameKind::kBinary, payload); }

  // Adopts a buffer whose first kFrameHeadroom bytes are headroom and the rest the payload,
  // without copying it: the receive path reassembles straight into such a buffer.
  static Frame adopt(FrameKind kind, std::string&& buffer_with_headroom);

  // A new frame of `kind` whose payload is `prefix` followed by `body` (one allocation).
  static Frame concat(FrameKind kind, std::string_view prefix, std::string_view body);

  FrameKind kind() const noexcept { return kind_; }
  bool is_text() const noexcept { return kind_ == FrameKind::kText; }
  bool is_binary() const noexcept { return kind_ == FrameKind::kBinary; }
  std::string_view payload() const noexcept {
    return std::string_view(storage_->bytes).substr(kFrameHeadroom);
  }
  std::size_t size() const noexcept { return storage_->bytes.size() - kFrameHeadroom; }

  // For the service thread only: the payload with writable headroom in front of it. The headroom
  // is scratch space for the frame header; the payload itself is never modified.
  unsigned char* payload_with_headroom() const noexcept;

  // A droppable frame may be discarded for a client that does not keep up, on routes with
  // slow_consumer = "drop_oldest" (e.g. QoS 0 telemetry). Replies, acks and errors never are.
  Frame droppable() const {
    Frame copy = *this;
    copy.droppable_ = true;
    return copy;
  }
  bool is_droppable() const noexcept { return droppable_; }

  // The variant published for `key`, or null. Any thread.
  const FrameVariant* find_variant(std::uint16_t key) const noexcept;
  // Publishes `variant` unless another thread published one for its key first; returns the one
  // in force (lock-free: a frame has a variant or two, and each is looked up per write).
  const FrameVariant& publish_variant(std::unique_ptr<FrameVariant> variant) const;

  // How many Frames share this buffer (for tests that check fan-out does not copy).
  long use_count() const noexcept { return storage_.use_count(); }

 private:
  struct Buffer {
    explicit Buffer(std::string b) : bytes(std::move(b)) {}
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer();
    std::string bytes;  // kFrameHeadroom bytes, then the payload
    std::atomic<FrameVariant*> variants{nullptr};
  };

  Frame(FrameKind kind, std::shared_ptr<Buffer> storage)
      : storage_(std::move(storage)), kind_(kind) {}

  std::shared_ptr<Buffer> storage_;
  FrameKind kind_;
  bool droppable_ = false;
};

}  // namespace wsbridge
