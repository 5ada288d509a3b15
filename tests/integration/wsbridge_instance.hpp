// A real wsbridge process for integration tests: writes a config, starts the binary on a free
// loopback port, waits until it listens, and stops it (SIGKILL at the latest) when destroyed.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include "support/process.hpp"
#include "support/ws_test_client.hpp"

namespace wsbridge::testing {

class WsbridgeInstance {
 public:
  // `config` may contain ${PORT} (and ${PORT2}, ${PORT3}), replaced by free ports.
  explicit WsbridgeInstance(std::string config, std::vector<std::string> extra_args = {}) {
    // A free port can be taken by a parallel test between our probe and wsbridge's bind: then
    // start again on other ports.
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (start(config, extra_args)) return;
    }
    ADD_FAILURE() << "wsbridge did not start listening; output:\n" << process->output();
  }

  bool start(std::string config, const std::vector<std::string>& extra_args) {
    port = free_tcp_port();
    port2 = free_tcp_port();
    port3 = free_tcp_port();
    replace_all(config, "${PORT}", std::to_string(port));
    replace_all(config, "${PORT2}", std::to_string(port2));
    replace_all(config, "${PORT3}", std::to_string(port3));
    replace_all(config, "${SOURCE_DIR}", WSBRIDGE_SOURCE_DIR);
    with_test_threads(config);
    config_path = write_temp_file("wsbridge.toml", config);
    std::vector<std::string> argv = {WSBRIDGE_BINARY, "--config", config_path};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    process.emplace(ChildProcess::spawn(argv));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (!process->running()) return false;  // e.g. "cannot listen": the port was taken
      if (wait_port_open("127.0.0.1", port, std::chrono::milliseconds(100))) {
        // Open, but perhaps by someone else: ours would have exited on its failed bind.
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        return process->running();
      }
    }
    return false;
  }

  ~WsbridgeInstance() {
    // The server's log explains most failures: show it with them.
    if ((::testing::Test::HasFailure() ||
         ::testing::UnitTest::GetInstance()->failed_test_count() > 0) &&
        process) {
      std::cerr << "---- wsbridge output ----\n"
                << process->output() << "-------------------------\n";
    }
  }
  WsbridgeInstance(const WsbridgeInstance&) = delete;
  WsbridgeInstance& operator=(const WsbridgeInstance&) = delete;

  ClientOptions client(const std::string& path) const {
    ClientOptions opts;
    opts.port = port;
    opts.path = path;
    return opts;
  }

  // Replaces the configuration file (for a reload) with `config`, its ${PORT}s filled in as at
  // the start, and the test threads too: a reload that changed them would be refused.
  void rewrite_config(std::string config) const {
    replace_all(config, "${PORT}", std::to_string(port));
    replace_all(config, "${PORT2}", std::to_string(port2));
    replace_all(config, "${PORT3}", std::to_string(port3));
    replace_all(config, "${SOURCE_DIR}", WSBRIDGE_SOURCE_DIR);
    with_test_threads(config);
    std::ofstream(config_path, std::ios::trunc) << config;
  }

  // WSBRIDGE_TEST_THREADS (scripts/test.sh runs the suite with 1 and with 2) sets `[server]
  // threads` where a test did not choose itself.
  static void with_test_threads(std::string& config) {
    const char* threads = std::getenv("WSBRIDGE_TEST_THREADS");
    if (threads == nullptr || *threads == '\0' || config.find("threads =") != std::string::npos) {
      return;
    }
    const std::string line = std::string("threads = ") + threads + "\n";
    if (auto at = config.find("[server]\n"); at != std::string::npos) {
      config.insert(at + 9, line);
    } else {
      config += "\n[server]\n" + line;  // (a table at the end cannot capture other keys)
    }
  }

  static void replace_all(std::string& s, const std::string& from, const std::string& to) {
    for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
      s.replace(pos, from.size(), to);
    }
  }

  uint16_t port = 0;
  uint16_t port2 = 0;
  uint16_t port3 = 0;
  std::string config_path;
  std::optional<ChildProcess> process;
};

}  // namespace wsbridge::testing
