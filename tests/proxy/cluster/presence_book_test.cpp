// Other instances' presence (proxy/src/cluster/presence_book.cpp): what a replayed or forged
// presence message can no longer do.
#include "cluster/presence_book.hpp"

#include <gtest/gtest.h>

namespace wsbridge::cluster {
namespace {

using Change = PresenceBook::Change;

TEST(PresenceBookTest, AnUpCountsUntilTheDownOfItsOwnConnection) {
  PresenceBook book;
  // Connection e1 opens at 100 (its will sealed then), says "up" at 101.
  EXPECT_EQ(book.apply("b", true, "e1", 101, 0, 101), Change::kUp);
  EXPECT_TRUE(book.is_up("b"));
  EXPECT_EQ(book.apply("b", true, "e1", 101, 0, 101), Change::kNone);  // (a duplicate delivery)
  // The will of e1, sealed at 100 and sent when the connection drops: it ends e1.
  EXPECT_EQ(book.apply("b", false, "e1", 100, 0, 100), Change::kDown);
  EXPECT_FALSE(book.is_up("b"));
  // Reconnected as e2.
  EXPECT_EQ(book.apply("b", true, "e2", 200, 0, 200), Change::kUp);
  EXPECT_EQ(book.up(), std::set<std::string>{"b"});
}

TEST(PresenceBookTest, AReplayedDownOfAnOldConnectionLeavesTheLiveOneUp) {
  PresenceBook book;
  book.apply("b", true, "e1", 101, 0, 101);
  book.apply("b", false, "e1", 100, 0, 100);
  book.apply("b", true, "e2", 201, 0, 201);
  EXPECT_EQ(book.apply("b", false, "e1", 100, 0, 100), Change::kNone);  // recorded, sent again
  EXPECT_TRUE(book.is_up("b"));
}

TEST(PresenceBookTest, AReplayedUpOfADeadConnectionBringsNoGhostBack) {
  PresenceBook book;
  book.apply("b", true, "e1", 101, 0, 101);
  book.apply("b", false, "e1", 100, 0, 100);
  EXPECT_EQ(book.apply("b", true, "e1", 101, 0, 101), Change::kNone);  // its epoch went down
  EXPECT_FALSE(book.is_up("b"));
  // An instance that starts after b died sees only b's retained will (e2's, sealed at 200), then
  // someone replays b's "up" of e1 (sealed at 101, before it).
  PresenceBook late;
  EXPECT_EQ(late.apply("b", false, "e2", 200, 0, 200), Change::kNone);
  EXPECT_EQ(late.apply("b", true, "e1", 101, 0, 101), Change::kNone);
  EXPECT_FALSE(late.is_up("b"));
  EXPECT_TRUE(late.up().empty());
}

TEST(PresenceBookTest, InstancesAreKeptApart) {
  PresenceBook book;
  book.apply("b", true, "e1", 10, 0, 10);
  book.apply("c", true, "e1", 10, 0, 10);  // (epochs are random: equal only in a test)
  EXPECT_EQ(book.apply("c", false, "e1", 9, 0, 9), Change::kDown);
  EXPECT_TRUE(book.is_up("b"));
  EXPECT_EQ(book.up(), std::set<std::string>{"b"});
}

// An instance that says "up" every 1,000 ms counts for three of them after the last one heard.
TEST(PresenceBookTest, AnInstanceNotRenewingItsUpStopsCounting) {
  PresenceBook book;
  EXPECT_EQ(book.apply("b", true, "e1", 10'000, 1000, 10'000), Change::kUp);
  EXPECT_EQ(book.apply("b", true, "e1", 11'000, 1000, 11'000), Change::kNone);  // renewed
  EXPECT_TRUE(book.expire(13'999).empty());
  EXPECT_TRUE(book.is_up("b"));
  // Its broker crashed and lost its will: it is never heard from again.
  EXPECT_EQ(book.expire(14'000), std::vector<std::string>{"b"});
  EXPECT_FALSE(book.is_up("b"));
  EXPECT_TRUE(book.up().empty());
  EXPECT_TRUE(book.expire(20'000).empty());  // (once)
  // It was only cut off: its next "up", of the same connection, counts again.
  EXPECT_EQ(book.apply("b", true, "e1", 21'000, 1000, 21'000), Change::kUp);
  // An instance of before the renewals ("every_ms" absent) lasts until its "down".
  EXPECT_EQ(book.apply("c", true, "e9", 1, 0, 1), Change::kUp);
  EXPECT_EQ(book.expire(1'000'000'000), std::vector<std::string>{"b"});  // (not c)
  EXPECT_TRUE(book.is_up("c"));
}

// What a newcomer is handed: the retained "up" of an instance that died unheard (or a replay of
// one). Sealed long ago, it is stale on arrival; sealed recently, it lapses three intervals on.
TEST(PresenceBookTest, ARetainedUpNoLongerRenewedIsAGhostForAWhileAtMost) {
  PresenceBook late;
  const std::int64_t now = 1'000'000;
  const std::int64_t allowance = PresenceBook::kSkewAllowanceMs;
  EXPECT_EQ(late.apply("b", true, "e1", now - 3000 - allowance - 1, 1000, now), Change::kNone);
  EXPECT_FALSE(late.is_up("b"));
  EXPECT_EQ(late.apply("c", true, "e2", now - 2000, 1000, now), Change::kUp);
  EXPECT_EQ(late.expire(now + 3000), std::vector<std::string>{"c"});
  // An empty retained message hid a live instance from the newcomer: its next renewal shows it.
  EXPECT_EQ(late.apply("d", true, "e3", now + 500, 1000, now + 500), Change::kUp);
}

}  // namespace
}  // namespace wsbridge::cluster
