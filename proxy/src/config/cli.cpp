#include "config/cli.hpp"

#include "wsbridge/log.hpp"

namespace wsbridge {

std::string usage_text() {
  return "Usage: wsbridge --config FILE [--log-level LEVEL]\n"
         "       wsbridge --check-config FILE\n"
         "       wsbridge --version | --help\n"
         "\n"
         "A WebSocket bridge: accepts ws:// connections and routes each one by URL path to an\n"
         "adapter (echo, mqtt, http) configured in TOML.\n"
         "\n"
         "Options:\n"
         "  -c, --config FILE        run with the TOML configuration in FILE\n"
         "      --check-config FILE  validate FILE (and build every route) without listening;\n"
         "                           prints errors as file:line:column: message\n"
         "      --log-level LEVEL    error, warn, info or debug; overrides [server] log_level\n"
         "  -V, --version            print the version and exit\n"
         "  -h, --help               print this help and exit\n"
         "\n"
         "Signals: SIGTERM or SIGINT stop accepting, let requests in flight finish, close every\n"
         "WebSocket with 1012 (service restart) and exit 0 within [server] shutdown_timeout\n"
         "(after [server] drain_delay). SIGHUP reloads the config file without dropping\n"
         "connections (an invalid file is refused and logged; the running config stays).\n"
         "Exit status: 0 success, 1 runtime failure (e.g. a port in use), 2 usage or config "
         "error.\n";
}

CliResult parse_command_line(const std::vector<std::string>& args) {
  CliOptions options;
  bool have_action = false;
  auto set_action = [&](CliOptions::Action action, const std::string& flag) -> std::string {
    if (have_action && options.action != action)
      return "option " + flag + " conflicts with an earlier one";
    have_action = true;
    options.action = action;
    return {};
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    std::string value;
    std::string flag = arg;
    if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    auto take_value = [&](std::string& out) -> bool {
      if (flag != arg) {
        out = value;
        return !out.empty();
      }
      if (i + 1 >= args.size()) return false;
      out = args[++i];
      return true;
    };
    std::string error;
    if (flag == "-h" || flag == "--help") {
      error = set_action(CliOptions::Action::kHelp, flag);
    } else if (flag == "-V" || flag == "--version") {
      error = set_action(CliOptions::Action::kVersion, flag);
    } else if (flag == "-c" || flag == "--config" || flag == "--check-config") {
      error = set_action(
          flag == "--check-config" ? CliOptions::Action::kCheckConfig : CliOptions::Action::kRun,
          flag);
      if (error.empty() && !options.config_file.empty()) error = "the config file is given twice";
      if (error.empty() && !take_value(options.config_file)) error = flag + " needs a FILE";
    } else if (flag == "--log-level") {
      std::string level;
      if (!take_value(level)) {
        error = "--log-level needs a LEVEL";
      } else if (!parse_log_level(level)) {
        error = "--log-level must be error, warn, info or debug, not \"" + level + "\"";
      } else {
        options.log_level = level;
      }
    } else {
      error = "unknown argument \"" + arg + "\"";
    }
    if (!error.empty()) return CliResult{std::nullopt, error};
  }
  if ((options.action == CliOptions::Action::kRun ||
       options.action == CliOptions::Action::kCheckConfig) &&
      options.config_file.empty()) {
    return CliResult{std::nullopt, "no config file: use --config FILE"};
  }
  return CliResult{options, {}};
}

}  // namespace wsbridge
