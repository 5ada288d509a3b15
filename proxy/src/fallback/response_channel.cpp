#include "fallback/response_channel.hpp"

namespace wsbridge::fallback {

bool ResponseChannel::has_room() const {
  std::lock_guard lock(mutex_);
  if (abandoned_ || ended_) return false;
  if (bytes_.size() < capacity_) return true;
  owner_waiting_ = true;
  return false;
}

bool ResponseChannel::append(std::string_view bytes) {
  {
    std::lock_guard lock(mutex_);
    if (abandoned_ || ended_) return false;
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
    bytes_.append(body);
    ended_ = true;
    status_ = status;
    content_type_ = std::move(content_type);
    if (abandoned_) return;
  }
  if (wake_carrier) wake_carrier();
}

ResponseChannel::Taken ResponseChannel::take(std::size_t max_bytes) {
  Taken taken;
  std::lock_guard lock(mutex_);
  if (kind_ == ResponseKind::kWhole && !ended_) return taken;
  // A whole response is written with its headers in one go: all of it at once.
  if (kind_ == ResponseKind::kWhole || bytes_.size() <= max_bytes) {
    taken.bytes.swap(bytes_);
  } else {
    taken.bytes.assign(bytes_, 0, max_bytes);
    bytes_.erase(0, max_bytes);
  }
  taken.ended = ended_ && bytes_.empty();
  taken.status = status_;
  taken.content_type = content_type_;
  if (owner_waiting_ && bytes_.size() < capacity_ / 2) {
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
    bytes_.clear();
    bytes_.shrink_to_fit();
    if (ended_) return;
  }
  if (wake_owner) wake_owner();
}

bool ResponseChannel::abandoned() const {
  std::lock_guard lock(mutex_);
  return abandoned_;
}

}  // namespace wsbridge::fallback
