// The compression keys of listeners and routes (proxy/src/config/compression_keys.cpp): defaults,
// a route overriding its listener, the old permessage_deflate key, and errors with positions.
#include <gtest/gtest.h>

#include "config/server_config.hpp"
#include "wsbridge/adapter_registry.hpp"

namespace wsbridge {
namespace {

class CompressionKeysTest : public ::testing::Test {
 protected:
  CompressionKeysTest() { register_builtin_adapters(registry_); }
  ServerConfig parse(std::string_view text) { return parse_config(text, "c.toml", registry_); }
  std::string error_of(std::string_view text) {
    try {
      parse(text);
    } catch (const ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << "config was accepted:\n" << text;
    return {};
  }
  AdapterRegistry registry_;
};

constexpr std::string_view kRoute = "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\n";

TEST_F(CompressionKeysTest, RouteKeysOverrideTheListenersOneByOne) {
  auto config = parse(std::string(R"([[listeners]]
port = 1
compression = "per_connection"
compression_level = 6
compression_window_bits = 12
)") + std::string(kRoute) +
                      "compression = \"shared\"\ncompression_threshold = \"1KiB\"\n");
  const CompressionConfig& listener = config.listeners[0].compression;
  EXPECT_EQ(listener.mode, CompressionMode::kPerConnection);
  EXPECT_EQ(listener.level, 6);
  EXPECT_EQ(listener.window_bits, 12);
  EXPECT_EQ(listener.threshold, 128u);
  const CompressionConfig effective = config.routes[0].compression.over(listener);
  EXPECT_EQ(effective.mode, CompressionMode::kShared);
  EXPECT_EQ(effective.threshold, 1024u);
  EXPECT_EQ(effective.level, 6);  // the listener's, not overridden
  EXPECT_EQ(effective.window_bits, 12);
  // A route without keys takes the listener's.
  config = parse("[[listeners]]\nport = 1\ncompression = \"off\"\n" + std::string(kRoute));
  EXPECT_EQ(config.routes[0].compression.over(config.listeners[0].compression).mode,
            CompressionMode::kOff);
}

TEST_F(CompressionKeysTest, TheOldKeyStillLoads) {
  auto config = parse("[[listeners]]\nport = 1\npermessage_deflate = true\n");
  EXPECT_EQ(config.listeners[0].compression.mode, CompressionMode::kShared);
  EXPECT_EQ(error_of("[[listeners]]\nport = 1\npermessage_deflate = true\ncompression = \"off\"\n"),
            "c.toml:3:22: 'permessage_deflate' in [[listeners]] #1 is the old name of "
            "'compression': give only 'compression'");
  // Never a route key.
  EXPECT_NE(
      error_of("[[listeners]]\nport = 1\n" + std::string(kRoute) + "permessage_deflate = true\n")
          .find("c.toml:6:1: unknown key 'permessage_deflate'"),
      std::string::npos);
}

TEST_F(CompressionKeysTest, BadValuesSayWhereAndWhy) {
  EXPECT_EQ(error_of("[[listeners]]\nport = 1\ncompression = \"shard\"\n"),
            "c.toml:3:15: 'compression' in [[listeners]] #1 must be one of \"off\", \"shared\", "
            "\"per_connection\", not \"shard\"; did you mean \"shared\"?");
  EXPECT_EQ(
      error_of("[[listeners]]\nport = 1\n" + std::string(kRoute) + "compression_window_bits = 8\n"),
      "c.toml:6:27: 'compression_window_bits' in [[routes]] #1 must be between 9 and 15, not 8");
  EXPECT_EQ(error_of("[[listeners]]\nport = 1\ncompression_level = 0\n"),
            "c.toml:3:21: 'compression_level' in [[listeners]] #1 must be between 1 and 9, not 0");
  EXPECT_NE(
      error_of("[[listeners]]\nport = 1\ncompression_threshold = \"big\"\n")
          .find("c.toml:3:25: 'compression_threshold' in [[listeners]] #1 is not a valid size"),
      std::string::npos);
}

}  // namespace
}  // namespace wsbridge
