// Address parsing and the groups the per-address limits count (proxy/src/handshake/ip_address.cpp).
#include "handshake/ip_address.hpp"

#include <gtest/gtest.h>

namespace wsbridge {
namespace {

TEST(IpAddress, ParsesBothFamiliesAndUnmapsIpv4MappedAddresses) {
  const auto v4 = parse_ip_address("10.1.2.3");
  ASSERT_TRUE(v4);
  EXPECT_FALSE(v4->v6);
  EXPECT_EQ(v4->bytes[0], 10);
  EXPECT_EQ(v4->bytes[3], 3);
  const auto mapped = parse_ip_address("::ffff:10.1.2.3");
  ASSERT_TRUE(mapped);
  EXPECT_FALSE(mapped->v6) << "a dual-stack listener's IPv4 client is an IPv4 client";
  EXPECT_EQ(mapped->bytes, v4->bytes);
  const auto v6 = parse_ip_address("2001:db8::1");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->v6);
  EXPECT_EQ(v6->bytes[1], 0x01);
  EXPECT_EQ(v6->bytes[15], 1);
  for (const char* bad : {"", "example.com", "[::1]", "10.0.0.1:80", "10.0.0.0/8", "1.2.3",
                          "fe80::1%eth0 but longer than any address could be written"}) {
    EXPECT_FALSE(parse_ip_address(bad)) << bad;
  }
}

TEST(IpAddress, Ipv4AddressesAreTheirOwnGroup) {
  EXPECT_EQ(address_group("203.0.113.7", 64), "203.0.113.7");
  EXPECT_EQ(address_group("::ffff:203.0.113.7", 64), "203.0.113.7");
  EXPECT_EQ(address_group("::ffff:203.0.113.7", 128), "203.0.113.7");
}

TEST(IpAddress, Ipv6AddressesAreGroupedByTheirNetwork) {
  // Every address of one /64 is one client; the next /64 is another.
  EXPECT_EQ(address_group("2001:db8:0:1::1", 64), "2001:db8:0:1::/64");
  EXPECT_EQ(address_group("2001:db8:0:1:ffff:ffff:ffff:fffe", 64), "2001:db8:0:1::/64");
  EXPECT_EQ(address_group("2001:DB8:0:1:a:b:c:d", 64), "2001:db8:0:1::/64");
  EXPECT_EQ(address_group("2001:db8:0:2::1", 64), "2001:db8:0:2::/64");
  // Prefixes that do not end on a byte or a group of four digits.
  EXPECT_EQ(address_group("2001:db8:abcd:12ff::1", 56), "2001:db8:abcd:1200::/56");
  EXPECT_EQ(address_group("2001:db8:abcd:12ff::1", 60), "2001:db8:abcd:12f0::/60");
  EXPECT_EQ(address_group("2001:db8:abcd:12ff::1", 61), "2001:db8:abcd:12f8::/61");
  EXPECT_EQ(address_group("2001:8db8:ffff::1", 17), "2001:8000::/17");
  EXPECT_EQ(address_group("2001:db8:ffff::1", 17), "2001::/17");
  // 128: each address on its own, written one way whatever way it came.
  EXPECT_EQ(address_group("2001:DB8:0:0:0:0:0:1", 128), "2001:db8::1");
  EXPECT_EQ(address_group("::1", 64), "::/64");
}

TEST(IpAddress, TextThatIsNoAddressIsItsOwnGroup) {
  EXPECT_EQ(address_group("unknown", 64), "unknown");
  EXPECT_EQ(address_group("", 64), "");
}

}  // namespace
}  // namespace wsbridge
