// ConfigTable (proxy/src/config/config_table.cpp): secrets from the environment, durations,
// sizes, arrays and named tables, with file:line:column in every error.
#include <gtest/gtest.h>

#include <cstdlib>

#include "wsbridge/config_table.hpp"

namespace wsbridge {
namespace {

using namespace std::chrono_literals;

TEST(ConfigTableTest, SecretFromEnvironment) {
  setenv("WSBRIDGE_TEST_SECRET", "s3cret", 1);
  auto root = toml::parse(
      "a_env = \"WSBRIDGE_TEST_SECRET\"\nb = \"inline\"\n"
      "c = \"x\"\nc_env = \"WSBRIDGE_TEST_SECRET\"\n"
      "d_env = \"WSBRIDGE_TEST_UNSET_VARIABLE\"\n");
  ConfigTable t(root, "s.toml", "[t]");
  EXPECT_EQ(t.secret("a"), "s3cret");
  EXPECT_EQ(t.secret("b"), "inline");
  EXPECT_EQ(t.secret("missing"), std::nullopt);
  try {
    t.secret("c");
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "s.toml:4:9: give either 'c' or 'c_env' in [t], not both");
  }
  try {
    t.secret("d");
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "s.toml:5:9: 'd_env' in [t] names the environment variable "
                 "WSBRIDGE_TEST_UNSET_VARIABLE, which is not set");
  }
}

TEST(ConfigTableTest, DurationsAndSizes) {
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("30s"), 30s);
  EXPECT_EQ(parse_duration("1.5s"), 1500ms);
  EXPECT_EQ(parse_duration("5m"), 300s);
  EXPECT_EQ(parse_duration("1h"), 3600s);
  EXPECT_EQ(parse_duration("12"), 12s);
  EXPECT_EQ(parse_duration("s"), std::nullopt);
  EXPECT_EQ(parse_duration("1.2.3s"), std::nullopt);
  EXPECT_EQ(parse_duration("5 fortnights"), std::nullopt);
  EXPECT_EQ(parse_duration("-1s"), std::nullopt);
  EXPECT_EQ(parse_byte_size("1MiB"), 1048576u);
  EXPECT_EQ(parse_byte_size("64KiB"), 65536u);
  EXPECT_EQ(parse_byte_size("2GiB"), 2147483648u);
  EXPECT_EQ(parse_byte_size("10MB"), 10000000u);
  EXPECT_EQ(parse_byte_size("100"), 100u);
  EXPECT_EQ(parse_byte_size("0.5B"), std::nullopt);
  EXPECT_EQ(parse_byte_size("1XB"), std::nullopt);
}

TEST(ConfigTableTest, ArraysAndNamedTables) {
  auto root =
      toml::parse("list = [\"a\", \"b\"]\nbad = [\"a\", 2]\n[up.one]\nx = 1\n[up.two]\ny = 2\n");
  ConfigTable t(root, "n.toml", "the top level");
  EXPECT_EQ(t.string_array("list"), (std::vector<std::string>{"a", "b"}));
  try {
    t.string_array("bad");
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "n.toml:2:13: every element of 'bad' in the top level must be a string, not an "
                 "integer");
  }
  auto named = t.named_tables("up");
  ASSERT_EQ(named.size(), 2u);
  EXPECT_EQ(named[0].first, "one");
  EXPECT_EQ(named[1].second.name(), "[up.two]");
  EXPECT_NO_THROW(t.reject_unknown_keys());
}

}  // namespace
}  // namespace wsbridge
