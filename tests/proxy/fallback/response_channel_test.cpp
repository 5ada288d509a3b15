#include "fallback/response_channel.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace wsbridge::fallback {
namespace {

TEST(FallbackResponseChannel, AStreamHandsOverBytesAsTheyComeAndWakesItsCarrier) {
  ResponseChannel channel(ResponseKind::kStream, 8);
  int wakes = 0;
  channel.wake_carrier = [&] { ++wakes; };
  EXPECT_TRUE(channel.append("abc"));
  EXPECT_EQ(wakes, 1);
  auto taken = channel.take(2);
  EXPECT_EQ(taken.body(), "ab");
  EXPECT_FALSE(taken.ended);
  channel.end();
  taken = channel.take(100);
  EXPECT_EQ(taken.body(), "c");
  EXPECT_TRUE(taken.ended);
  EXPECT_FALSE(channel.append("late"));
}

TEST(FallbackResponseChannel, AWholeResponseIsTakenOnlyOnceEnded) {
  ResponseChannel channel(ResponseKind::kWhole, 8);
  channel.append("part");
  EXPECT_EQ(channel.take(100).body(), "");
  channel.answer(409, "application/json", "{}");  // (already has bytes: answer adds and ends)
  const auto taken = channel.take(3);  // (a whole response comes whole, whatever the chunk)
  EXPECT_TRUE(taken.ended);
  EXPECT_EQ(taken.status, 409u);
  EXPECT_EQ(taken.body(), "part{}");
}

TEST(FallbackResponseChannel, AFullChannelWakesItsOwnerOnceDrainedBelowHalf) {
  ResponseChannel channel(ResponseKind::kStream, 8);
  int owner_wakes = 0;
  channel.wake_owner = [&] { ++owner_wakes; };
  channel.append("12345678");
  EXPECT_FALSE(channel.has_room());
  EXPECT_FALSE(channel.take(2).room_again);  // 6 left: not under half
  EXPECT_TRUE(channel.take(4).room_again);
  EXPECT_TRUE(channel.has_room());
}

TEST(FallbackResponseChannel, AnAbandonedChannelRefusesBytesAndTellsItsOwner) {
  ResponseChannel channel(ResponseKind::kStream, 8);
  int owner_wakes = 0;
  channel.wake_owner = [&] { ++owner_wakes; };
  channel.append("abc");
  channel.abandon();
  EXPECT_EQ(owner_wakes, 1);
  EXPECT_TRUE(channel.abandoned());
  EXPECT_FALSE(channel.has_room());
  EXPECT_FALSE(channel.append("x"));
  channel.abandon();
  EXPECT_EQ(owner_wakes, 1);
}

TEST(FallbackResponseChannel, TakenBytesComeWithTheHeadroomInFront) {
  ResponseChannel channel(ResponseKind::kStream, 1000, 16);
  channel.append("abcdef");
  auto taken = channel.take(4);
  EXPECT_EQ(taken.bytes.size(), 16u + 4u);
  EXPECT_EQ(taken.body(), "abcd");
  taken = channel.take(100);
  EXPECT_EQ(taken.body(), "ef");
  channel.append("g");
  EXPECT_EQ(channel.take(100).body(), "g");
}

TEST(FallbackResponseChannel, BytesCrossThreadsInOrder) {
  ResponseChannel channel(ResponseKind::kStream, 1 << 20);
  std::thread owner([&] {
    for (int i = 0; i < 10000; ++i) channel.append(std::to_string(i) + ",");
    channel.end();
  });
  std::string got;
  while (true) {
    auto taken = channel.take(100);
    got += taken.body();
    if (taken.ended) break;
  }
  owner.join();
  std::string expected;
  for (int i = 0; i < 10000; ++i) expected += std::to_string(i) + ",";
  EXPECT_EQ(got, expected);
}

}  // namespace
}  // namespace wsbridge::fallback
