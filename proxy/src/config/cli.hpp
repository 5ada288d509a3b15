// The command line of the wsbridge executable, parsed without side effects so it can be tested.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace wsbridge {

struct CliOptions {
  enum class Action { kRun, kCheckConfig, kVersion, kHelp };
  Action action = Action::kRun;
  std::string config_file;
  std::optional<std::string> log_level;  // overrides [server].log_level
};

struct CliResult {
  std::optional<CliOptions> options;  // empty on a usage error
  std::string error;                  // the usage error
};

CliResult parse_command_line(const std::vector<std::string>& args);
std::string usage_text();

}  // namespace wsbridge
