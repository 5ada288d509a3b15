// A session's outbound queue: frames in order, with pop from the front and rare removal from the
// middle (drop_oldest). A vector with a moving head rather than std::deque, whose libstdc++
// implementation allocates a 512-byte node and its map for every session up front: with tens of
// thousands of mostly idle connections that was the largest wsbridge-owned cost per connection.
// An empty queue can give its memory back (release_memory) and starts small again.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "wsbridge/frame.hpp"

namespace wsbridge {

class FrameQueue {
 public:
  using iterator = std::vector<Frame>::iterator;

  bool empty() const { return head_ == frames_.size(); }
  std::size_t size() const { return frames_.size() - head_; }
  Frame& front() { return frames_[head_]; }
  void push_back(Frame frame) { frames_.push_back(std::move(frame)); }
  // Puts `frames` before everything queued, in their order (a session resumed on another
  // transport: what its client has not had goes first).
  void prepend(std::vector<Frame> frames) {
    frames_.insert(begin(), std::make_move_iterator(frames.begin()),
                   std::make_move_iterator(frames.end()));
  }

  void pop_front() {
    { Frame gone = std::move(frames_[head_]); }  // releases the buffer now
    ++head_;
    if (head_ == frames_.size()) {
      frames_.clear();
      head_ = 0;
    } else if (head_ >= 32 && head_ * 2 >= frames_.size()) {
      // Amortized O(1): the moved-from half goes once it outweighs the rest.
      frames_.erase(frames_.begin(), frames_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }

  void clear() {
    frames_.clear();
    head_ = 0;
  }
  // Frees the storage of an empty queue (an idle connection keeps nothing).
  void release_memory() {
    if (empty() && frames_.capacity() > 0) {
      std::vector<Frame>().swap(frames_);
      head_ = 0;
    }
  }

  iterator begin() { return frames_.begin() + static_cast<std::ptrdiff_t>(head_); }
  iterator end() { return frames_.end(); }
  iterator erase(iterator it) { return frames_.erase(it); }

 private:
  std::vector<Frame> frames_;  // [0, head_) are moved-from, never touched again
  std::size_t head_ = 0;
};

}  // namespace wsbridge
