// A session's outgoing queue (proxy/src/session/frame_queue.hpp).
#include <gtest/gtest.h>

#include "session/frame_queue.hpp"

namespace wsbridge {
namespace {

TEST(FrameQueueTest, KeepsOrderThroughCompactionErasureAndRelease) {
  FrameQueue q;
  EXPECT_TRUE(q.empty());
  int next_in = 0;
  int next_out = 0;
  // Interleaved pushes and pops cross the compaction threshold many times.
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 7; ++i) q.push_back(Frame::text(std::to_string(next_in++)));
    for (int i = 0; i < 5; ++i) {
      ASSERT_EQ(q.front().payload(), std::to_string(next_out++));
      q.pop_front();
    }
  }
  EXPECT_EQ(q.size(), static_cast<std::size_t>(next_in - next_out));
  // Erasing from the middle (drop_oldest) keeps the others in order.
  for (auto it = q.begin(); it != q.end();) {
    it = std::stoi(std::string(it->payload())) % 2 == 0 ? q.erase(it) : std::next(it);
  }
  int last = -1;
  while (!q.empty()) {
    const int v = std::stoi(std::string(q.front().payload()));
    EXPECT_EQ(v % 2, 1);
    EXPECT_GT(v, last);
    last = v;
    q.pop_front();
  }
  // A popped frame's buffer is released at once, not when the slot is reused.
  Frame shared = Frame::text("shared");
  q.push_back(shared);
  EXPECT_EQ(shared.use_count(), 2);
  q.pop_front();
  EXPECT_EQ(shared.use_count(), 1);
  q.release_memory();
  q.push_back(Frame::text("again"));
  EXPECT_EQ(q.front().payload(), "again");
}

}  // namespace
}  // namespace wsbridge
