#include "fallback/resume_buffer.hpp"

namespace wsbridge::fallback {

std::uint64_t ResumeBuffer::add(Frame frame) {
  bytes_ += frame.size();
  entries_.push_back(std::move(frame));
  while (bytes_ > max_bytes_ && entries_.size() > 1) {
    bytes_ -= entries_.front().size();
    entries_.pop_front();
  }
  return next_id_++;
}

void ResumeBuffer::acknowledge(std::uint64_t id) {
  while (!entries_.empty() && first_kept() <= id) {
    bytes_ -= entries_.front().size();
    entries_.pop_front();
  }
  if (entries_.empty()) entries_.shrink_to_fit();
}

const Frame* ResumeBuffer::find(std::uint64_t id) const {
  if (id < first_kept() || id > last_id()) return nullptr;
  return &entries_[id - first_kept()];
}

}  // namespace wsbridge::fallback
