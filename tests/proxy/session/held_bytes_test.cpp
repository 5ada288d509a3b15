// HeldBytes: one session's part of its shard's count of unfinished input.
#include "session/held_bytes.hpp"

#include <gtest/gtest.h>

namespace wsbridge {
namespace {

using Part = HeldBytes::Part;

TEST(HeldBytes, GrowsWithinTheLimitAndShrinksFreely) {
  std::size_t shard = 0;
  HeldBytes a;
  HeldBytes b;
  a.bind(&shard);
  b.bind(&shard);
  EXPECT_TRUE(a.set(Part::kReassembly, 600, 1000));
  EXPECT_TRUE(b.set(Part::kAdapterPartial, 400, 1000));
  EXPECT_EQ(shard, 1000u);
  EXPECT_FALSE(b.set(Part::kAdapterPartial, 401, 1000));  // refused: nothing changes
  EXPECT_FALSE(b.set(Part::kAdapterWaiting, 1, 1000));
  EXPECT_EQ(b.bytes(Part::kAdapterPartial), 400u);
  EXPECT_EQ(b.bytes(Part::kAdapterWaiting), 0u);
  EXPECT_EQ(shard, 1000u);
  EXPECT_TRUE(a.set(Part::kReassembly, 100, 1000));  // shrinking is never refused
  EXPECT_TRUE(b.set(Part::kAdapterWaiting, 500, 1000));
  EXPECT_EQ(shard, 1000u);
}

TEST(HeldBytes, EachMayHoldTheAllowanceWhateverOthersHold) {
  std::size_t shard = 0;
  HeldBytes full;
  HeldBytes small;
  full.bind(&shard);
  small.bind(&shard);
  ASSERT_TRUE(full.set(Part::kReassembly, 1000, 1000, 64));
  EXPECT_TRUE(small.set(Part::kReassembly, 64, 1000, 64));
  EXPECT_FALSE(small.set(Part::kReassembly, 65, 1000, 64));
  EXPECT_EQ(shard, 1064u);
}

TEST(HeldBytes, GivesBackWhatItHeldWhenDestroyed) {
  std::size_t shard = 0;
  {
    HeldBytes a;
    a.bind(&shard);
    ASSERT_TRUE(a.set(Part::kReassembly, 500, 1000));
    ASSERT_TRUE(a.set(Part::kAdapterPartial, 200, 1000));
    ASSERT_TRUE(a.set(Part::kAdapterWaiting, 100, 1000));
    EXPECT_EQ(shard, 800u);
  }
  EXPECT_EQ(shard, 0u);
  HeldBytes unbound;  // (a session torn down before it was bound holds nothing)
  EXPECT_TRUE(unbound.set(Part::kReassembly, 10, 0));
  EXPECT_EQ(shard, 0u);
}

// What closing a session would take back (its message and its adapter's partial packet, not
// messages waiting whole for an upstream), now and were one part to hold more.
TEST(HeldBytes, UnfinishedLeavesOutWhatWaitsWhole) {
  std::size_t shard = 0;
  HeldBytes a;
  a.bind(&shard);
  ASSERT_TRUE(a.set(Part::kReassembly, 500));
  ASSERT_TRUE(a.set(Part::kAdapterPartial, 200));
  ASSERT_TRUE(a.set(Part::kAdapterWaiting, 100));
  EXPECT_EQ(a.unfinished(), 700u);
  EXPECT_EQ(a.unfinished_with(Part::kReassembly, 900), 1100u);
  EXPECT_EQ(a.unfinished_with(Part::kAdapterPartial, 0), 500u);
  EXPECT_EQ(a.unfinished_with(Part::kAdapterWaiting, 5000), 700u);
}

}  // namespace
}  // namespace wsbridge
