// Round-robin among sessions, each session's items in order (plugins/mqtt/fair_queue.hpp).
#include "fair_queue.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wsbridge::mqtt {
namespace {

struct Item {
  ConnectionId session = 0;
  std::string name;
};

std::vector<std::string> drain(FairQueue<Item>& q) {
  std::vector<std::string> out;
  while (!q.empty()) {
    const std::string expected = q.front().name;  // front() is what pop() takes
    Item item = q.pop();
    EXPECT_EQ(item.name, expected);
    out.push_back(item.name);
  }
  return out;
}

TEST(FairQueue, SessionsTakeTurnsAndKeepTheirOrder) {
  FairQueue<Item> q;
  for (int i = 1; i <= 4; ++i) q.push_back({1, "a" + std::to_string(i)});
  q.push_back({2, "b1"});
  q.push_back({3, "c1"});
  q.push_back({2, "b2"});
  EXPECT_EQ(q.size(), 7u);
  // A burst from one session does not keep the others waiting behind all of it.
  EXPECT_EQ(drain(q), (std::vector<std::string>{"a1", "b1", "c1", "a2", "b2", "a3", "a4"}));
  EXPECT_EQ(q.size(), 0u);
}

TEST(FairQueue, PushFrontGoesFirstForItsSessionAndInTurn) {
  FairQueue<Item> q;
  q.push_back({1, "a2"});
  q.push_back({2, "b1"});
  q.push_back({3, "c1"});
  q.push_front({3, "c0"});  // sent again after a lost connection: before everything else
  q.push_front({1, "a1"});
  EXPECT_EQ(drain(q), (std::vector<std::string>{"a1", "c0", "b1", "a2", "c1"}));
  q.push_front({4, "d1"});  // into an empty queue
  q.push_back({5, "e1"});
  EXPECT_EQ(drain(q), (std::vector<std::string>{"d1", "e1"}));
}

TEST(FairQueue, ASessionThatEmptiedRejoinsAtTheBack) {
  FairQueue<Item> q;
  q.push_back({1, "a1"});
  q.push_back({2, "b1"});
  q.push_back({2, "b2"});
  EXPECT_EQ(q.pop().name, "a1");
  q.push_back({1, "a2"});  // session 1 had nothing left: behind session 2
  EXPECT_EQ(drain(q), (std::vector<std::string>{"b1", "a2", "b2"}));
}

}  // namespace
}  // namespace wsbridge::mqtt
