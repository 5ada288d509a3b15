#include "fallback/response_channel.hpp"

#include <algorithm>

namespace wsbridge::fallback {

bool ResponseChannel::has_room() const {
  std::lock_guard lock(mutex_);
  if (abandoned_ || ended_) return false;
  if (pending() < capacity_) return true;
  owner_waiting_ = true;
  return false;
}

bool ResponseChannel::append(std::string_view bytes) {
  {
    std::lock_guard lock(mutex_);
    if (abandoned_ || ended_) return false;
    reserve_for(bytes.size());
    bytes_.append(bytes);
  }
  if (kind_ == ResponseKind::kStream && wake_carrier) wake_carrier();
  return true;
}

void ResponseChannel::end(unsigned status, std::string content_type) {
  {
    std::lock_guard lock(mutex_);
    if (ended_) return;
    ended_ = true;
    status_ = status;
    content_type_ = std::move(content_type);
    if (abandoned_) return;
  }
  if (wake_carrier) wake_carrier();
}

void ResponseChannel::answer(unsigned status, std::string content_type, std::string_view body) {
  {
    std::lock_guard lock(mutex_);
    if (ended_) return;
    reserve_for(body.size());
    bytes_.append(body);
    ended_ = true;
    status_ = status;
    content_type_ = std::move(content_type);
    if (abandoned_) return;
  }
  if (wake_carrier) wake_carrier();
}

// The carrier takes the whole buffer (no copy) and leaves none behind: the next append starts a
// new one, sized for what it brings, so appends do not grow a small string again and again; and
// the carrier frames a stream's chunk after the bytes. Sized here, each append copies its bytes
// once: none are copied again as the buffer grows, and none when the carrier frames them.
void ResponseChannel::reserve_for(std::size_t more) {
  if (bytes_.empty()) {
    bytes_.reserve(headroom_ + more + kTailRoom);
    bytes_.assign(headroom_, '\0');
    return;
  }
  const std::size_t needed = bytes_.size() + more + kTailRoom;
  if (bytes_.capacity() < needed) bytes_.reserve(std::max(needed, 2 * bytes_.capacity()));
}

ResponseChannel::Taken ResponseChannel::take(std::size_t max_bytes) {
  Taken taken;
  taken.headroom = headroom_;
  std::lock_guard lock(mutex_);
  if (kind_ == ResponseKind::kWhole && !ended_) {
    taken.bytes.assign(headroom_, '\0');
    return taken;
  }
  // A whole response is written with its headers in one go: all of it at once.
  if (kind_ == ResponseKind::kWhole || pending() <= max_bytes) {
    taken.bytes.swap(bytes_);  // (no copy: the headroom goes with it; none is left behind)
    if (taken.bytes.empty()) taken.bytes.assign(headroom_, '\0');
  } else {
    taken.bytes.assign(headroom_, '\0');
    taken.bytes.append(bytes_, headroom_, max_bytes);
    bytes_.erase(headroom_, max_bytes);
  }
  taken.ended = ended_ && pending() == 0;
  taken.status = status_;
  taken.content_type = content_type_;
  if (owner_waiting_ && pending() < capacity_ / 2) {
    owner_waiting_ = false;
    taken.room_again = true;
  }
  return taken;
}

void ResponseChannel::abandon() {
  {
    std::lock_guard lock(mutex_);
    if (abandoned_) return;
    abandoned_ = true;
    std::string().swap(bytes_);
    if (ended_) return;
  }
  if (wake_owner) wake_owner();
}

bool ResponseChannel::abandoned() const {
  std::lock_guard lock(mutex_);
  return abandoned_;
}

bool ResponseChannel::ended() const {
  std::lock_guard lock(mutex_);
  return ended_;
}

}  // namespace wsbridge::fallback
