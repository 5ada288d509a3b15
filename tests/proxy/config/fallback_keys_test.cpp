// The [fallback] table (proxy/src/config/fallback_keys.cpp): defaults, every key, and errors at
// their positions.
#include <gtest/gtest.h>

#include "proxy/config/config_fixture.hpp"

namespace wsbridge {
namespace {

using namespace std::chrono_literals;

using FallbackKeysTest = testing::ConfigTest;

using testing::kListener;
using testing::with_listener;

TEST_F(FallbackKeysTest, Defaults) {
  const auto config = parse(std::string(kListener));
  const fallback::Settings& s = config.fallback;
  EXPECT_TRUE(s.enabled);
  EXPECT_TRUE(s.secret.empty());
  EXPECT_EQ(s.sse_byte_limit, 128u * 1024);
  EXPECT_EQ(s.heartbeat, 15s);
  EXPECT_EQ(s.poll_timeout, 25s);
  EXPECT_EQ(s.reconnect_window, 30s);
  EXPECT_EQ(s.resume_buffer_bytes, 256u * 1024);
  EXPECT_EQ(s.max_post_bytes, 1024u * 1024);
  EXPECT_EQ(s.post_bytes_in_flight, 64u * 1024 * 1024);
  EXPECT_EQ(s.token_lifetime, 24h);
  EXPECT_TRUE(s.peers.empty());
}

TEST_F(FallbackKeysTest, EveryKeyLoads) {
  const auto config = parse(with_listener(R"([fallback]
secret = "0123456789abcdef0123456789abcdef"
sse_byte_limit = "8KiB"
heartbeat = "2s"
poll_timeout = "3s"
reconnect_window = "9s"
resume_buffer_bytes = "4KiB"
max_post_bytes = "2KiB"
post_bytes_in_flight = "1MiB"
token_lifetime = "1h"
[fallback.peers]
"web-2" = "http://10.0.0.2:8080/"
)"));
  const fallback::Settings& s = config.fallback;
  EXPECT_EQ(s.secret.size(), 32u);
  EXPECT_EQ(s.sse_byte_limit, 8u * 1024);
  EXPECT_EQ(s.heartbeat, 2s);
  EXPECT_EQ(s.poll_timeout, 3s);
  EXPECT_EQ(s.reconnect_window, 9s);
  EXPECT_EQ(s.resume_buffer_bytes, 4u * 1024);
  EXPECT_EQ(s.max_post_bytes, 2u * 1024);
  EXPECT_EQ(s.post_bytes_in_flight, 1024u * 1024);
  EXPECT_EQ(s.token_lifetime, 1h);
  ASSERT_EQ(s.peers.count("web-2"), 1u);
  EXPECT_EQ(s.peers.at("web-2")->host, "10.0.0.2:8080");
}

TEST_F(FallbackKeysTest, BadValuesSayWhereAndWhy) {
  EXPECT_EQ(error_of(with_listener("[fallback]\npoll_timeout = \"30s\"\n")),
            "test.toml:2:16: 'poll_timeout' must be shorter than 'reconnect_window', or a "
            "session would end between two polls");
  EXPECT_EQ(error_of(with_listener("[fallback]\nheartbeat = \"1500ms\"\n")),
            "test.toml:2:13: 'heartbeat' is in whole seconds");
  EXPECT_EQ(error_of(with_listener("[fallback]\nsecret = \"short\"\n")),
            "test.toml:2:10: 'secret' must be at least 32 bytes");
  EXPECT_EQ(error_of(with_listener("[fallback]\npost_bytes_in_flight = \"512KiB\"\n")),
            "test.toml:2:24: 'post_bytes_in_flight' must be at least 'max_post_bytes' (1048576), "
            "or no POST of that size could arrive");
  EXPECT_EQ(error_of(with_listener("[fallback]\nmax_post_bytes = \"128MiB\"\n")),
            "test.toml:2:18: 'post_bytes_in_flight' must be at least 'max_post_bytes' "
            "(134217728), or no POST of that size could arrive");
  EXPECT_EQ(error_of(with_listener("[fallback.peers]\nb = \"ftp://h:1\"\n")),
            "test.toml:2:5: a peer is \"http://host:port\" or \"https://host:port\"");
  EXPECT_NE(
      error_of(with_listener("[fallback]\npost_bytes = 1\n")).find("unknown key 'post_bytes'"),
      std::string::npos);
}

}  // namespace
}  // namespace wsbridge
