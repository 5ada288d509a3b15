#include "wsbridge/frame.hpp"

#include <stdexcept>

namespace wsbridge {

Frame::Frame(FrameKind kind, std::string_view payload) : Frame(concat(kind, {}, payload)) {}

Frame Frame::adopt(FrameKind kind, std::string&& buffer_with_headroom) {
  if (buffer_with_headroom.size() < kFrameHeadroom) {
    throw std::invalid_argument("Frame::adopt: buffer shorter than the headroom");
  }
  return Frame(kind, std::make_shared<std::string>(std::move(buffer_with_headroom)));
}

Frame Frame::concat(FrameKind kind, std::string_view prefix, std::string_view body) {
  auto storage = std::make_shared<std::string>();
  storage->reserve(kFrameHeadroom + prefix.size() + body.size());
  storage->append(kFrameHeadroom, '\0');
  storage->append(prefix);
  storage->append(body);
  return Frame(kind, std::move(storage));
}

unsigned char* Frame::payload_with_headroom() const noexcept {
  // The string object is never const (it is created through make_shared<std::string>), so writing
  // the header bytes into its headroom is well defined; lws writes only in front of the payload.
  return reinterpret_cast<unsigned char*>(storage_->data()) + kFrameHeadroom;
}

}  // namespace wsbridge
