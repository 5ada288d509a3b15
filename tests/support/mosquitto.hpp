// A real mosquitto broker for tests: a generated config on a free loopback port, its log
// captured (log_type all, so SUBSCRIBE/UNSUBSCRIBE packets can be counted from the broker's side),
// and stop / kill / freeze / restart on the same port for outage tests.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <thread>

#include <optional>
#include <stdexcept>
#include <string>

#include "support/eventually.hpp"
#include "support/process.hpp"

namespace wsbridge::testing {

class Mosquitto {
 public:
  explicit Mosquitto(std::string extra_config = "") : port_(free_tcp_port()) {
    // The log goes to a file (mosquitto flushes it per line, unlike a piped stdout) directly in
    // /tmp, because a broker started as root drops to the mosquitto user, which cannot write
    // into our private temporary directory.
    log_path_ = "/tmp/wsbridge-test-mosquitto-" + std::to_string(getpid()) + "-" +
                std::to_string(port_) + ".log";
    ::unlink(log_path_.c_str());
    config_path_ = write_temp_file(
        "mosquitto.conf", "listener " + std::to_string(port_) +
                              " 127.0.0.1\nallow_anonymous true\npersistence false\n"
                              // As root, mosquitto would drop to its own user, which also
                              // clears the parent-death signal that kills it with a crashed test.
                              "user root\n"
                              "log_dest file " +
                              log_path_ + "\nlog_type all\nlog_timestamp false\n" + extra_config);
    start();
  }
  ~Mosquitto() {
    kill();
    ::unlink(log_path_.c_str());
  }
  Mosquitto(const Mosquitto&) = delete;
  Mosquitto& operator=(const Mosquitto&) = delete;

  uint16_t port() const { return port_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

  void start() {
    process_.emplace(ChildProcess::spawn({"/usr/sbin/mosquitto", "-c", config_path_}));
    if (!wait_port_open("127.0.0.1", port_, std::chrono::seconds(10))) {
      throw std::runtime_error("mosquitto did not start: " + process_->output());
    }
  }
  // SIGKILL: the broker vanishes without a goodbye, as in a crash.
  void kill() {
    if (!process_) return;
    process_->signal(SIGKILL);
    process_->wait_exit(std::chrono::seconds(5));
    process_.reset();
  }
  void freeze() { process_->signal(SIGSTOP); }
  void thaw() { process_->signal(SIGCONT); }

  // Everything the broker logged, across restarts (it appends to the same file).
  std::string log() const {
    std::ifstream in(log_path_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  // How many times the log contains `needle`.
  std::size_t count(const std::string& needle) const {
    const std::string text = log();
    std::size_t n = 0;
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
      ++n;
    }
    return n;
  }
  bool wait_for_log(const std::string& needle, std::size_t times,
                    std::chrono::milliseconds timeout) {
    return eventually([&] { return count(needle) >= times; }, timeout);
  }

 private:
  uint16_t port_;
  std::string config_path_;
  std::string log_path_;
  std::optional<ChildProcess> process_;
};

}  // namespace wsbridge::testing
