// A connection's filters and their bounds (plugins/mqtt/subscription_set.hpp).
#include "subscription_set.hpp"

#include <gtest/gtest.h>

namespace wsbridge::mqtt {
namespace {

TEST(SubscriptionSet, CountsBytesAndLevelsAsFiltersComeAndGo) {
  SubscriptionSet set;
  EXPECT_TRUE(set.insert("a/b/c"));
  EXPECT_FALSE(set.insert("a/b/c")) << "the same filter twice is one";
  EXPECT_TRUE(set.insert("x/#"));
  EXPECT_EQ(set.size(), 2u);
  EXPECT_EQ(set.bytes(), 8u);
  EXPECT_EQ(set.levels(), 5u);
  EXPECT_TRUE(set.erase("a/b/c"));
  EXPECT_FALSE(set.erase("a/b/c"));
  EXPECT_EQ(set.bytes(), 3u);
  EXPECT_EQ(set.levels(), 2u);
  EXPECT_TRUE(set.contains("x/#"));
  EXPECT_FALSE(set.contains("a/b/c"));
}

TEST(SubscriptionSet, RefusesPastEachBoundAndNamesItsKey) {
  SubscriptionSet set;
  ASSERT_TRUE(set.insert("aaaa/bbbb"));  // 9 bytes, 2 levels
  const SubscriptionBounds count{1, 1000, 1000};
  auto refusal = set.refusal("c", count);
  ASSERT_TRUE(refusal);
  EXPECT_NE(refusal->find("max_subscriptions"), std::string::npos) << *refusal;
  EXPECT_FALSE(set.refusal("aaaa/bbbb", count)) << "a filter already held adds nothing";

  const SubscriptionBounds bytes{10, 12, 1000};
  EXPECT_FALSE(set.refusal("abc", bytes));  // 12 in all: at the bound
  refusal = set.refusal("abcd", bytes);
  ASSERT_TRUE(refusal);
  EXPECT_NE(refusal->find("max_subscription_bytes"), std::string::npos) << *refusal;

  const SubscriptionBounds levels{10, 1000, 5};
  EXPECT_FALSE(set.refusal("a/b/c", levels));  // 5 in all: at the bound
  refusal = set.refusal("/a/b/c", levels);     // 4 levels: the empty first one counts
  ASSERT_TRUE(refusal);
  EXPECT_NE(refusal->find("max_subscription_levels"), std::string::npos) << *refusal;
}

}  // namespace
}  // namespace wsbridge::mqtt
