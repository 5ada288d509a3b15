// wsbridge's Server in the test process, on a thread of its own, with test adapters the test
// holds: for tests that call Connection::send and close from their own threads (the cross-thread
// hand-off, also under ThreadSanitizer). Header-only: the support library does not link the core.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "config/server_config.hpp"
#include "server/server.hpp"
#include "support/eventually.hpp"
#include "support/process.hpp"
#include "support/ws_test_client.hpp"
#include "wsbridge/adapter_registry.hpp"

namespace wsbridge::testing {

// An AdapterKind whose every route forwards to one adapter the test holds. (wsbridge::Frame is
// spelled out: testing::Frame is the test client's.)
class ForwardingKind final : public AdapterKind {
 public:
  explicit ForwardingKind(std::shared_ptr<Adapter> adapter) : adapter_(std::move(adapter)) {}
  std::unique_ptr<Adapter> create_route(ConfigTable&, const RouteContext&) override {
    return std::make_unique<Forwarder>(adapter_);
  }

 private:
  struct Forwarder final : Adapter {
    explicit Forwarder(std::shared_ptr<Adapter> a) : target(std::move(a)) {}
    void on_open(const std::shared_ptr<Connection>& c) override { target->on_open(c); }
    void on_message(const std::shared_ptr<Connection>& c, wsbridge::Frame m) override {
      target->on_message(c, std::move(m));
    }
    void on_close(const std::shared_ptr<Connection>& c, const CloseInfo& i) override {
      target->on_close(c, i);
    }
    std::shared_ptr<Adapter> target;
  };
  std::shared_ptr<Adapter> adapter_;
};

// The shards to run on: `threads`, else WSBRIDGE_TEST_THREADS (scripts/test.sh runs the suite
// with 1 and with 2), else 2, so that every test crosses shards unless told otherwise.
inline std::string test_threads(std::optional<unsigned> threads) {
  if (threads) return std::to_string(*threads);
  const char* env = std::getenv("WSBRIDGE_TEST_THREADS");
  return env != nullptr && *env != '\0' ? env : "2";
}

// `routes` (TOML [[routes]] tables) served on a free loopback port until stop() or destruction.
class InProcessServer {
 public:
  InProcessServer(const std::string& routes, AdapterRegistry& registry,
                  std::optional<unsigned> threads = std::nullopt) {
    using namespace std::chrono_literals;
    port = free_tcp_port();
    const std::string text =
        "[server]\nshutdown_timeout = \"2s\"\nlog_level = \"warn\"\nthreads = " +
        test_threads(threads) + "\n[[listeners]]\nport = " + std::to_string(port) + "\n" + routes;
    server_ = std::make_unique<Server>(
        std::make_shared<ServerConfig>(parse_config(text, "inprocess.toml", registry)));
    thread_ = std::thread([this] { server_->run(); });
    EXPECT_TRUE(eventually([&] { return server_->ready(); }, 5s, 5ms));
  }
  ~InProcessServer() { stop(); }
  InProcessServer(const InProcessServer&) = delete;
  InProcessServer& operator=(const InProcessServer&) = delete;
  void stop() {
    if (!thread_.joinable()) return;
    server_->request_shutdown();
    thread_.join();
    server_.reset();
  }
  ClientOptions client(const std::string& path) const {
    ClientOptions o;
    o.port = port;
    o.path = path;
    return o;
  }
  uint16_t port = 0;

 private:
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

}  // namespace wsbridge::testing
