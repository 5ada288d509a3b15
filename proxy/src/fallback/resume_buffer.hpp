// What a fallback session sent lately, by message id, so that a stream or poll that broke can
// resume where its client stopped (docs/FALLBACK.md, "message ids"). Bounded by bytes: the frames
// are the very frames queued (shared, not copied), so a fanned-out message costs its entry only.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>

#include "wsbridge/frame.hpp"

namespace wsbridge::fallback {

class ResumeBuffer {
 public:
  explicit ResumeBuffer(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  // Gives `frame` the next id and keeps it, forgetting the oldest past the byte bound (the newest
  // one stays even when it alone is over it). Returns the id.
  std::uint64_t add(Frame frame);

  // The client has every message up to `id`: those need not be kept.
  void acknowledge(std::uint64_t id);

  // The frame with `id`, if still kept.
  const Frame* find(std::uint64_t id) const;

  std::uint64_t last_id() const { return next_id_ - 1; }
  // The oldest id still kept (last_id() + 1 when none is).
  std::uint64_t first_kept() const { return next_id_ - entries_.size(); }
  std::size_t bytes() const { return bytes_; }

 private:
  std::size_t max_bytes_;
  std::deque<Frame> entries_;  // ids first_kept() .. last_id()
  std::uint64_t next_id_ = 1;
  std::size_t bytes_ = 0;
};

}  // namespace wsbridge::fallback
