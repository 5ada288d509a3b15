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
  EXPECT_EQ(book.apply("b", true, "e1", 101), Change::kUp);
  EXPECT_TRUE(book.is_up("b"));
  EXPECT_EQ(book.apply("b", true, "e1", 101), Change::kNone);  // (a duplicate delivery)
  // The will of e1, sealed at 100 and sent when the connection drops: it ends e1.
  EXPECT_EQ(book.apply("b", false, "e1", 100), Change::kDown);
  EXPECT_FALSE(book.is_up("b"));
  // Reconnected as e2.
  EXPECT_EQ(book.apply("b", true, "e2", 200), Change::kUp);
  EXPECT_EQ(book.up(), std::set<std::string>{"b"});
}

TEST(PresenceBookTest, AReplayedDownOfAnOldConnectionLeavesTheLiveOneUp) {
  PresenceBook book;
  book.apply("b", true, "e1", 101);
  book.apply("b", false, "e1", 100);
  book.apply("b", true, "e2", 201);
  EXPECT_EQ(book.apply("b", false, "e1", 100), Change::kNone);  // recorded, sent again
  EXPECT_TRUE(book.is_up("b"));
}

TEST(PresenceBookTest, AReplayedUpOfADeadConnectionBringsNoGhostBack) {
  PresenceBook book;
  book.apply("b", true, "e1", 101);
  book.apply("b", false, "e1", 100);
  EXPECT_EQ(book.apply("b", true, "e1", 101), Change::kNone);  // its epoch went down
  EXPECT_FALSE(book.is_up("b"));
  // An instance that starts after b died sees only b's retained will (e2's, sealed at 200), then
  // someone replays b's "up" of e1 (sealed at 101, before it).
  PresenceBook late;
  EXPECT_EQ(late.apply("b", false, "e2", 200), Change::kNone);
  EXPECT_EQ(late.apply("b", true, "e1", 101), Change::kNone);
  EXPECT_FALSE(late.is_up("b"));
  EXPECT_TRUE(late.up().empty());
}

TEST(PresenceBookTest, InstancesAreKeptApart) {
  PresenceBook book;
  book.apply("b", true, "e1", 10);
  book.apply("c", true, "e1", 10);  // (epochs are random: equal only in a test)
  EXPECT_EQ(book.apply("c", false, "e1", 9), Change::kDown);
  EXPECT_TRUE(book.is_up("b"));
  EXPECT_EQ(book.up(), std::set<std::string>{"b"});
}

}  // namespace
}  // namespace wsbridge::cluster
