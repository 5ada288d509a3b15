#include "wsbridge/frame.hpp"

#include <stdexcept>
#include <utility>

namespace wsbridge {

Frame::Frame(FrameKind kind, std::string_view payload) : Frame(concat(kind, {}, payload)) {}

Frame Frame::adopt(FrameKind kind, std::string&& buffer_with_headroom) {
  if (buffer_with_headroom.size() < kFrameHeadroom) {
    throw std::invalid_argument("Frame::adopt: buffer shorter than the headroom");
  }
  return Frame(kind, std::make_shared<Buffer>(std::move(buffer_with_headroom)));
}

Frame Frame::concat(FrameKind kind, std::string_view prefix, std::string_view body) {
  std::string bytes;
  bytes.reserve(kFrameHeadroom + prefix.size() + body.size());
  bytes.append(kFrameHeadroom, '\0');
  bytes.append(prefix);
  bytes.append(body);
  return Frame(kind, std::make_shared<Buffer>(std::move(bytes)));
}

unsigned char* Frame::payload_with_headroom() const noexcept {
  // The buffer is never const (it is created through make_shared<Buffer>), so writing the header
  // bytes into its headroom is well defined; lws writes only in front of the payload.
  return reinterpret_cast<unsigned char*>(storage_->bytes.data()) + kFrameHeadroom;
}

Frame::Buffer::~Buffer() {
  FrameVariant* v = variants.load(std::memory_order_acquire);
  while (v != nullptr) delete std::exchange(v, v->next);
}

const FrameVariant* Frame::find_variant(std::uint16_t key) const noexcept {
  for (const FrameVariant* v = storage_->variants.load(std::memory_order_acquire); v != nullptr;
       v = v->next) {
    if (v->key == key) return v;
  }
  return nullptr;
}

const FrameVariant& Frame::publish_variant(std::unique_ptr<FrameVariant> variant) const {
  std::atomic<FrameVariant*>& head = storage_->variants;
  FrameVariant* expected = head.load(std::memory_order_acquire);
  for (;;) {
    for (FrameVariant* v = expected; v != nullptr; v = v->next) {
      if (v->key == variant->key) return *v;  // another thread was first: use its variant
    }
    variant->next = expected;
    if (head.compare_exchange_weak(expected, variant.get(), std::memory_order_acq_rel,
                                   std::memory_order_acquire)) {
      return *variant.release();
    }
  }
}

}  // namespace wsbridge
