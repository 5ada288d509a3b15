// The [limits] table (proxy/src/config/server_config.cpp): defaults, every key, and errors at
// their positions.
#include <gtest/gtest.h>

#include "proxy/config/config_fixture.hpp"

namespace wsbridge {
namespace {

using namespace std::chrono_literals;

using LimitsKeysTest = testing::ConfigTest;

using testing::kListener;
using testing::with_listener;

TEST_F(LimitsKeysTest, Defaults) {
  const LimitsConfig limits = parse(std::string(kListener)).limits;
  EXPECT_EQ(limits.max_connections, 10000u);
  EXPECT_EQ(limits.max_connections_per_ip, 1000u);
  EXPECT_EQ(limits.max_http_connections_per_ip, 2000u);
  EXPECT_EQ(limits.handshake_timeout, 10s);
  EXPECT_EQ(limits.inbound_bytes_in_flight, 256u * 1024 * 1024);
  EXPECT_EQ(limits.unread_output_bytes, 256u * 1024 * 1024);
  EXPECT_EQ(limits.ipv6_prefix_length, 64u);
}

TEST_F(LimitsKeysTest, EveryKeyLoads) {
  const LimitsConfig limits = parse(with_listener(R"([limits]
max_connections = 50
max_connections_per_ip = 5
max_http_connections_per_ip = 7
handshake_timeout = "3s"
inbound_bytes_in_flight = "8MiB"
unread_output_bytes = "32MiB"
ipv6_prefix_length = 48
)"))
                                  .limits;
  EXPECT_EQ(limits.max_connections, 50u);
  EXPECT_EQ(limits.max_connections_per_ip, 5u);
  EXPECT_EQ(limits.max_http_connections_per_ip, 7u);
  EXPECT_EQ(limits.handshake_timeout, 3s);
  EXPECT_EQ(limits.inbound_bytes_in_flight, 8u * 1024 * 1024);
  EXPECT_EQ(limits.unread_output_bytes, 32u * 1024 * 1024);
  EXPECT_EQ(limits.ipv6_prefix_length, 48u);
  EXPECT_EQ(parse(with_listener("[limits]\ninbound_bytes_in_flight = 65536\n"))
                .limits.inbound_bytes_in_flight,
            65536u);
}

TEST_F(LimitsKeysTest, HttpConnectionsFollowTheSessionLimitUnlessSet) {
  EXPECT_EQ(parse(with_listener("[limits]\nmax_connections_per_ip = 5000\n"))
                .limits.max_http_connections_per_ip,
            10000u);
  EXPECT_EQ(parse(with_listener("[limits]\nmax_connections_per_ip = 5000\n"
                                "max_http_connections_per_ip = 300\n"))
                .limits.max_http_connections_per_ip,
            300u);
}

TEST_F(LimitsKeysTest, BadValuesSayWhereAndWhy) {
  const std::string small =
      error_of(with_listener("[limits]\ninbound_bytes_in_flight = \"1KiB\"\n"));
  EXPECT_EQ(small.rfind("test.toml:2:27: ", 0), 0u) << small;
  EXPECT_NE(small.find("inbound_bytes_in_flight"), std::string::npos) << small;
  const std::string word =
      error_of(with_listener("[limits]\ninbound_bytes_in_flight = \"lots\"\n"));
  EXPECT_EQ(word.rfind("test.toml:2:27: ", 0), 0u) << word;
  const std::string unread = error_of(with_listener("[limits]\nunread_output_bytes = 1024\n"));
  EXPECT_EQ(unread.rfind("test.toml:2:23: ", 0), 0u) << unread;
  EXPECT_NE(unread.find("unread_output_bytes"), std::string::npos) << unread;
  const std::string prefix = error_of(with_listener("[limits]\nipv6_prefix_length = 129\n"));
  EXPECT_EQ(prefix.rfind("test.toml:2:22: ", 0), 0u) << prefix;
  EXPECT_NE(prefix.find("ipv6_prefix_length"), std::string::npos) << prefix;
  const std::string zero = error_of(with_listener("[limits]\nmax_connections = 0\n"));
  EXPECT_EQ(zero.rfind("test.toml:2:19: ", 0), 0u) << zero;
  EXPECT_NE(
      error_of(with_listener("[limits]\ninbound_bytes = 1\n")).find("unknown key 'inbound_bytes'"),
      std::string::npos);
}

}  // namespace
}  // namespace wsbridge
