// The global connection counts (proxy/src/server/connection_slots.cpp): places given back when a
// Slot goes, refusals by total and by address group, IPv6 clients counted by network.
#include "server/connection_slots.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace wsbridge {
namespace {

using Refusal = ConnectionSlots::Refusal;

TEST(ConnectionSlots, PerAddressAndTotalLimitsRefuseAndPlacesComeBack) {
  ConnectionSlots slots;
  const ConnectionSlots::Caps caps{3, 2, 64};
  Refusal refusal = Refusal::kNone;
  auto a1 = slots.take("10.0.0.1", caps, refusal);
  auto a2 = slots.take("10.0.0.1", caps, refusal);
  ASSERT_TRUE(a1 && a2);
  EXPECT_FALSE(slots.take("10.0.0.1", caps, refusal));
  EXPECT_EQ(refusal, Refusal::kPerIp);
  auto b = slots.take("10.0.0.2", caps, refusal);
  ASSERT_TRUE(b);
  EXPECT_EQ(refusal, Refusal::kNone);
  EXPECT_FALSE(slots.take("10.0.0.3", caps, refusal));
  EXPECT_EQ(refusal, Refusal::kTotal);
  EXPECT_EQ(slots.total(), 3u);
  a1.reset();
  EXPECT_EQ(slots.total(), 2u);
  EXPECT_EQ(slots.from_group("10.0.0.1"), 1u);
  EXPECT_TRUE(slots.take("10.0.0.1", caps, refusal)) << "the place given back is free again";
  EXPECT_EQ(slots.total(), 2u) << "and given back again when that slot is dropped";
}

TEST(ConnectionSlots, Ipv6ClientsCountByNetworkButKeepTheirAddress) {
  ConnectionSlots slots;
  Refusal refusal = Refusal::kNone;
  const ConnectionSlots::Caps by_64{100, 2, 64};
  std::vector<ConnectionSlots::Slot> held;
  for (const char* address : {"2001:db8:0:1::a", "2001:db8:0:1::b"}) {
    auto slot = slots.take(address, by_64, refusal);
    ASSERT_TRUE(slot) << address;
    EXPECT_EQ(slot->address(), address) << "the session shows the client's own address";
    EXPECT_EQ(slot->group(), "2001:db8:0:1::/64");
    held.push_back(std::move(*slot));
  }
  // A third address of the same /64 is the same client.
  EXPECT_FALSE(slots.take("2001:db8:0:1::c", by_64, refusal));
  EXPECT_EQ(refusal, Refusal::kPerIp);
  EXPECT_TRUE(slots.take("2001:db8:0:2::c", by_64, refusal)) << "another network";
  // At 128 every address is its own.
  EXPECT_TRUE(slots.take("2001:db8:0:1::c", {100, 2, 128}, refusal));
  EXPECT_EQ(slots.from_group("2001:db8:0:1::/64"), 2u);
  held.clear();
  EXPECT_EQ(slots.from_group("2001:db8:0:1::/64"), 0u);
  EXPECT_EQ(slots.total(), 0u);
}

TEST(ConnectionSlots, AMovedSlotIsGivenBackOnce) {
  ConnectionSlots slots;
  Refusal refusal = Refusal::kNone;
  const ConnectionSlots::Caps caps{10, 10, 64};
  auto first = slots.take("10.0.0.1", caps, refusal);
  auto second = slots.take("10.0.0.2", caps, refusal);
  ASSERT_TRUE(first && second);
  ConnectionSlots::Slot moved = std::move(*first);
  first.reset();
  EXPECT_EQ(slots.total(), 2u);
  moved = std::move(*second);  // gives back 10.0.0.1's place, takes over 10.0.0.2's
  second.reset();
  EXPECT_EQ(slots.total(), 1u);
  EXPECT_EQ(slots.from_group("10.0.0.1"), 0u);
  EXPECT_EQ(slots.from_group("10.0.0.2"), 1u);
  EXPECT_EQ(moved.address(), "10.0.0.2");
}

}  // namespace
}  // namespace wsbridge
