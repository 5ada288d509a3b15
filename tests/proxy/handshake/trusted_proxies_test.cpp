// The client behind trusted proxies (proxy/src/handshake/trusted_proxies.cpp).
#include "handshake/trusted_proxies.hpp"

#include <gtest/gtest.h>

namespace wsbridge {
namespace {

TrustedProxies parse(std::vector<std::string> entries) {
  std::string problem;
  auto p = TrustedProxies::parse(entries, &problem);
  EXPECT_TRUE(p) << problem;
  return p.value_or(TrustedProxies{});
}

TEST(TrustedProxiesTest, NetworksMatchByPrefix) {
  const TrustedProxies p = parse({"10.0.0.0/8", "192.168.1.7", "fd00::/8", "172.16.0.0/12"});
  EXPECT_TRUE(p.trusts("10.200.3.4"));
  EXPECT_TRUE(p.trusts("192.168.1.7"));
  EXPECT_FALSE(p.trusts("192.168.1.8"));
  EXPECT_TRUE(p.trusts("fd12::1"));
  EXPECT_FALSE(p.trusts("fe80::1"));
  EXPECT_TRUE(p.trusts("172.31.255.255"));
  EXPECT_FALSE(p.trusts("172.32.0.0"));
  EXPECT_TRUE(p.trusts("::ffff:10.1.1.1"));  // IPv4-mapped
  EXPECT_FALSE(p.trusts("not an address"));
  EXPECT_TRUE(parse({"0.0.0.0/0"}).trusts("8.8.8.8"));
  EXPECT_FALSE(parse({"0.0.0.0/0"}).trusts("::1"));
}

TEST(TrustedProxiesTest, BadEntriesAreRefused) {
  for (const char* bad : {"10.0.0.0/33", "10.0.0/8", "host.example", "::1/129", "10.0.0.0/",
                          "10.0.0.0/8x", "", "[::1]"}) {
    std::string problem;
    EXPECT_FALSE(TrustedProxies::parse({bad}, &problem)) << bad;
    EXPECT_NE(problem.find("is not an IP address or network"), std::string::npos) << problem;
  }
}

TEST(TrustedProxiesTest, TheClientIsTheRightmostUntrustedAddress) {
  const TrustedProxies p = parse({"127.0.0.1", "10.0.0.0/8"});
  EXPECT_EQ(p.client_of("127.0.0.1", "203.0.113.7"), "203.0.113.7");
  EXPECT_EQ(p.client_of("127.0.0.1", "1.1.1.1, 203.0.113.7"), "203.0.113.7");
  EXPECT_EQ(p.client_of("127.0.0.1", "1.1.1.1,203.0.113.7 , 10.0.0.2"), "203.0.113.7");
  EXPECT_EQ(p.client_of("127.0.0.1", "10.0.0.3, 10.0.0.2"), "10.0.0.3");  // all trusted
  EXPECT_EQ(p.client_of("127.0.0.1", "2001:db8::1"), "2001:db8::1");
  EXPECT_EQ(p.client_of("127.0.0.1", "::ffff:198.51.100.2"), "198.51.100.2");
  // Not from a trusted proxy: the header is the client's own word.
  EXPECT_EQ(p.client_of("198.51.100.9", "203.0.113.7"), "198.51.100.9");
  // What is not an address stops the walk at the last hop vouched for.
  EXPECT_EQ(p.client_of("127.0.0.1", "unknown"), "127.0.0.1");
  EXPECT_EQ(p.client_of("127.0.0.1", "203.0.113.7, garbage, 10.0.0.2"), "10.0.0.2");
  EXPECT_EQ(p.client_of("127.0.0.1", ""), "127.0.0.1");
  EXPECT_EQ(p.client_of("127.0.0.1", ",,"), "127.0.0.1");
}

// Some balancers write the client's port too (Azure Application Gateway: "IP:port"). Refused,
// every client behind such a balancer was the balancer, and shared one per-address limit.
TEST(TrustedProxiesTest, AnAddressWithItsPortIsTheAddress) {
  const TrustedProxies p = parse({"127.0.0.1", "10.0.0.0/8"});
  EXPECT_EQ(p.client_of("127.0.0.1", "203.0.113.7:51234"), "203.0.113.7");
  EXPECT_EQ(p.client_of("127.0.0.1", "[2001:db8::1]:443"), "2001:db8::1");
  EXPECT_EQ(p.client_of("127.0.0.1", "[2001:DB8::1]"), "2001:db8::1");
  EXPECT_EQ(p.client_of("127.0.0.1", "203.0.113.7:1, 10.0.0.2:8080"), "203.0.113.7");
  // Anything else with a colon is no address, and stops the walk as before.
  for (const char* bad : {"203.0.113.7:", "203.0.113.7:http", "203.0.113.7:123456", "1.2.3.4:5:6",
                          "[2001:db8::1", "[2001:db8::1]x", "[2001:db8::1]:", "[10.0.0.1]:80",
                          "2001:db8::1:443:", "[]:80", "host:80"}) {
    EXPECT_EQ(p.client_of("127.0.0.1", bad), "127.0.0.1") << bad;
  }
}

}  // namespace
}  // namespace wsbridge
