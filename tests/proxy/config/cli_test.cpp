// The command line (proxy/src/config/cli.cpp).
#include <gtest/gtest.h>

#include "config/cli.hpp"

namespace wsbridge {
namespace {

TEST(CliTest, ParsesActions) {
  auto r = parse_command_line({"--config", "a.toml"});
  ASSERT_TRUE(r.options);
  EXPECT_EQ(r.options->action, CliOptions::Action::kRun);
  EXPECT_EQ(r.options->config_file, "a.toml");
  r = parse_command_line({"--check-config=b.toml", "--log-level", "debug"});
  ASSERT_TRUE(r.options);
  EXPECT_EQ(r.options->action, CliOptions::Action::kCheckConfig);
  EXPECT_EQ(r.options->config_file, "b.toml");
  EXPECT_EQ(r.options->log_level, "debug");
  EXPECT_EQ(parse_command_line({"--version"}).options->action, CliOptions::Action::kVersion);
  EXPECT_EQ(parse_command_line({"-h"}).options->action, CliOptions::Action::kHelp);
}

TEST(CliTest, RejectsBadUsage) {
  EXPECT_EQ(parse_command_line({}).error, "no config file: use --config FILE");
  EXPECT_EQ(parse_command_line({"--config"}).error, "--config needs a FILE");
  EXPECT_EQ(parse_command_line({"--frobnicate"}).error, "unknown argument \"--frobnicate\"");
  EXPECT_EQ(parse_command_line({"-c", "a", "--log-level", "loud"}).error,
            "--log-level must be error, warn, info or debug, not \"loud\"");
  EXPECT_EQ(parse_command_line({"-c", "a", "--check-config", "b"}).error,
            "option --check-config conflicts with an earlier one");
  EXPECT_NE(usage_text().find("--check-config FILE"), std::string::npos);
}

}  // namespace
}  // namespace wsbridge
