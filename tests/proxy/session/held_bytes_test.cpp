// HeldBytes: one session's part of its shard's count of unfinished input.
#include "session/held_bytes.hpp"

#include <gtest/gtest.h>

namespace wsbridge {
namespace {

TEST(HeldBytes, GrowsWithinTheLimitAndShrinksFreely) {
  std::size_t shard = 0;
  HeldBytes a;
  HeldBytes b;
  a.bind(&shard);
  b.bind(&shard);
  EXPECT_TRUE(a.set(600, 1000));
  EXPECT_TRUE(b.set(400, 1000));
  EXPECT_EQ(shard, 1000u);
  EXPECT_FALSE(b.set(401, 1000));  // refused: nothing changes
  EXPECT_EQ(b.bytes(), 400u);
  EXPECT_EQ(shard, 1000u);
  EXPECT_TRUE(a.set(100, 1000));  // shrinking is never refused
  EXPECT_TRUE(b.set(900, 1000));
  EXPECT_EQ(shard, 1000u);
}

TEST(HeldBytes, EachMayHoldTheAllowanceWhateverOthersHold) {
  std::size_t shard = 0;
  HeldBytes full;
  HeldBytes small;
  full.bind(&shard);
  small.bind(&shard);
  ASSERT_TRUE(full.set(1000, 1000, 64));
  EXPECT_TRUE(small.set(64, 1000, 64));
  EXPECT_FALSE(small.set(65, 1000, 64));
  EXPECT_EQ(shard, 1064u);
}

TEST(HeldBytes, GivesBackWhatItHeldWhenDestroyed) {
  std::size_t shard = 0;
  {
    HeldBytes a;
    a.bind(&shard);
    ASSERT_TRUE(a.set(500, 1000));
    EXPECT_EQ(shard, 500u);
  }
  EXPECT_EQ(shard, 0u);
  HeldBytes unbound;  // (a session torn down before it was bound holds nothing)
  EXPECT_TRUE(unbound.set(10, 0));
  EXPECT_EQ(shard, 0u);
}

}  // namespace
}  // namespace wsbridge
