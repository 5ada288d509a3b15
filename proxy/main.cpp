// The wsbridge executable: parse the command line, load the config, serve until SIGTERM/SIGINT;
// SIGHUP reloads the config file.
#include <pthread.h>
#include <sys/resource.h>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <string_view>
#include <thread>

#include "config/cli.hpp"
#include "config/file_watch.hpp"
#include "config/server_config.hpp"
#include "metrics/core_metrics.hpp"
#include "server/server.hpp"
#include "version.hpp"
#include "wsbridge/log.hpp"
#include "wsbridge/metrics.hpp"

namespace {

// The certificate files of the TLS listeners that asked to be watched (tls.watch).
std::vector<std::filesystem::path> watched_files(const wsbridge::ServerConfig& config) {
  std::vector<std::filesystem::path> files;
  for (const auto& listener : config.listeners) {
    if (listener.tls && listener.tls->settings().watch) {
      files.insert(files.end(), listener.tls_files.begin(), listener.tls_files.end());
    }
  }
  return files;
}

// SIGHUP (or a watched certificate file that changed): load the file again off the service
// thread (parsing, building adapters, resolving backends, checking certificates), then hand the
// result over. An invalid file changes nothing.
void reload(wsbridge::Server& server, const wsbridge::CliOptions& options, std::string_view why,
            wsbridge::FileWatch& watch) {
  using namespace wsbridge;
  WSB_LOG(kInfo) << why << ": reloading " << options.config_file;
  AdapterRegistry registry;
  register_builtin_adapters(registry);
  std::shared_ptr<ServerConfig> next;
  try {
    next = std::make_shared<ServerConfig>(load_config_file(options.config_file, registry));
  } catch (const std::exception& e) {
    core_metrics::config_reload("invalid");
    if (server.serves_tls()) core_metrics::tls_certificate_reload("refused");
    WSB_LOG(kError) << "reload failed, keeping the current configuration: " << e.what();
    return;
  }
  if (!options.log_level) set_log_level(next->log_level);
  set_log_format(next->log_format);
  watch.watch(watched_files(*next));
  server.request_reload(std::move(next));
}

// Signals are taken synchronously by one thread (sigwait), which may then call ordinary code.
// They are blocked before any other thread exists, so every thread inherits the mask.
// With watched certificate files it also looks at them every 2 s between signals.
void start_signal_thread(wsbridge::Server& server, const wsbridge::CliOptions& options,
                         sigset_t signals, std::vector<std::filesystem::path> watched) {
  std::thread([&server, &options, signals, watched = std::move(watched)] {
    wsbridge::FileWatch watch;
    watch.watch(watched);
    int count = 0;
    while (true) {
      int sig = 0;
      if (watch.empty()) {
        if (sigwait(&signals, &sig) != 0) continue;
      } else {
        const timespec every{2, 0};
        sig = sigtimedwait(&signals, nullptr, &every);
        if (sig < 0) {
          if (count == 0 && watch.settled_change()) {
            reload(server, options, "a watched certificate file changed", watch);
          }
          continue;
        }
      }
      if (sig == SIGHUP) {
        if (count == 0) reload(server, options, "received SIGHUP", watch);
        continue;
      }
      if (sig != SIGTERM && sig != SIGINT) continue;
      if (++count == 1) {
        WSB_LOG(kInfo) << "received " << (sig == SIGTERM ? "SIGTERM" : "SIGINT");
        server.request_shutdown();
      } else {
        WSB_LOG(kWarn) << "second signal: exiting at once";
        std::_Exit(1);
      }
    }
  }).detach();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace wsbridge;
  const auto parsed = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  if (!parsed.options) {
    std::cerr << "wsbridge: " << parsed.error << "\n\n" << usage_text();
    return 2;
  }
  const CliOptions& options = *parsed.options;
  switch (options.action) {
    case CliOptions::Action::kHelp:
      std::cout << usage_text();
      return 0;
    case CliOptions::Action::kVersion:
      std::cout << "wsbridge " << kVersion << "\n";
      return 0;
    default:
      break;
  }

  AdapterRegistry registry;
  register_builtin_adapters(registry);
  std::shared_ptr<ServerConfig> config;
  try {
    config = std::make_shared<ServerConfig>(load_config_file(options.config_file, registry));
  } catch (const ConfigError& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  if (options.action == CliOptions::Action::kCheckConfig) {
    std::cout << options.config_file << ": ok (" << config->listeners.size() << " listener(s), "
              << config->routes.size() << " route(s)"
              << (config->proxies.empty()
                      ? std::string()
                      : ", " + std::to_string(config->proxies.size()) + " proxy prefix(es)")
              << ")\n";
    return 0;
  }

  set_log_level(options.log_level ? *parse_log_level(*options.log_level) : config->log_level);
  set_log_format(config->log_format);
  set_log_instance(config->instance_id);
  install_lws_log_bridge();
  std::signal(SIGPIPE, SIG_IGN);
  // Every connection is a descriptor: use all the hard limit allows (systemd's LimitNOFILE).
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  WSB_LOG(kInfo) << "wsbridge " << kVersion << " (instance " << config->instance_id
                 << ") starting with " << options.config_file;
  std::vector<std::filesystem::path> watched = watched_files(*config);
  try {
    Server server(std::move(config));  // its only owner: a reload can release it
    start_signal_thread(server, options, signals, std::move(watched));
    server.run();
  } catch (const std::exception& e) {
    WSB_LOG(kError) << e.what();
    return 1;
  }
  return 0;
}
