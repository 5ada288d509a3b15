#include "fallback/resume_buffer.hpp"

#include <gtest/gtest.h>

namespace wsbridge::fallback {
namespace {

TEST(FallbackResumeBuffer, NumbersFromOneAndKeepsWithinItsBytes) {
  ResumeBuffer buffer(10);
  EXPECT_EQ(buffer.last_id(), 0u);
  EXPECT_EQ(buffer.first_kept(), 1u);
  EXPECT_EQ(buffer.add(Frame::text("1234")), 1u);
  EXPECT_EQ(buffer.add(Frame::text("5678")), 2u);
  EXPECT_EQ(buffer.first_kept(), 1u);
  EXPECT_EQ(buffer.add(Frame::text("abcd")), 3u);  // 12 bytes: the oldest goes
  EXPECT_EQ(buffer.first_kept(), 2u);
  EXPECT_EQ(buffer.bytes(), 8u);
  EXPECT_EQ(buffer.find(1), nullptr);
  ASSERT_NE(buffer.find(3), nullptr);
  EXPECT_EQ(buffer.find(3)->payload(), "abcd");
  EXPECT_EQ(buffer.find(4), nullptr);
}

TEST(FallbackResumeBuffer, KeepsTheNewestEvenWhenItAloneIsOverTheBound) {
  ResumeBuffer buffer(4);
  buffer.add(Frame::text("ab"));
  buffer.add(Frame::binary(std::string(100, 'x')));
  EXPECT_EQ(buffer.first_kept(), 2u);
  ASSERT_NE(buffer.find(2), nullptr);
  EXPECT_TRUE(buffer.find(2)->is_binary());
}

TEST(FallbackResumeBuffer, AcknowledgedMessagesAreForgotten) {
  ResumeBuffer buffer(1000);
  for (int i = 0; i < 5; ++i) buffer.add(Frame::text("m"));
  buffer.acknowledge(3);
  EXPECT_EQ(buffer.first_kept(), 4u);
  EXPECT_EQ(buffer.bytes(), 2u);
  buffer.acknowledge(2);  // (older news changes nothing)
  EXPECT_EQ(buffer.first_kept(), 4u);
  buffer.acknowledge(99);
  EXPECT_EQ(buffer.first_kept(), 6u);
  EXPECT_EQ(buffer.bytes(), 0u);
  EXPECT_EQ(buffer.add(Frame::text("n")), 6u);  // ids go on
}

TEST(FallbackResumeBuffer, SharesTheQueuedFrameInsteadOfCopyingIt) {
  ResumeBuffer buffer(1000);
  const Frame frame = Frame::text("shared");
  buffer.add(frame);
  EXPECT_EQ(frame.use_count(), 2);
}

}  // namespace
}  // namespace wsbridge::fallback
