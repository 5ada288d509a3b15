// Frames (proxy/src/session/frame.cpp): the payload behind its headroom, shared buffers.
#include <gtest/gtest.h>

#include "wsbridge/frame.hpp"

namespace wsbridge {
namespace {

TEST(FrameTest, HoldsPayloadBehindHeadroom) {
  Frame f = Frame::text("hello");
  EXPECT_TRUE(f.is_text());
  EXPECT_EQ(f.payload(), "hello");
  EXPECT_EQ(f.size(), 5u);
  EXPECT_EQ(reinterpret_cast<const char*>(f.payload_with_headroom()), f.payload().data());
  Frame b = Frame::binary(std::string_view("\0\1\2", 3));
  EXPECT_TRUE(b.is_binary());
  EXPECT_EQ(b.payload(), std::string_view("\0\1\2", 3));
  EXPECT_EQ(Frame().size(), 0u);
}

TEST(FrameTest, CopiesShareOneBuffer) {
  Frame f = Frame::text("shared");
  std::vector<Frame> fanout(1000, f);
  EXPECT_EQ(f.use_count(), 1001);
  for (const Frame& copy : fanout) EXPECT_EQ(copy.payload().data(), f.payload().data());
}

TEST(FrameTest, AdoptKeepsTheBufferAndConcatPrefixes) {
  std::string buffer(kFrameHeadroom, '\0');
  buffer += "payload";
  Frame f = Frame::adopt(FrameKind::kBinary, std::move(buffer));
  EXPECT_EQ(f.payload(), "payload");
  EXPECT_THROW(Frame::adopt(FrameKind::kText, std::string("short")), std::invalid_argument);
  EXPECT_EQ(Frame::concat(FrameKind::kText, "Echo: ", "hi").payload(), "Echo: hi");
}

}  // namespace
}  // namespace wsbridge
