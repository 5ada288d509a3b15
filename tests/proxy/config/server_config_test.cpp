// Config loading (proxy/src/config/server_config.cpp): every kind of error is reported as
// file:line:column: message.
#include <gtest/gtest.h>

#include "proxy/config/config_fixture.hpp"

namespace wsbridge {
namespace {

using namespace std::chrono_literals;

using testing::ConfigTest;

// (Port 8080: the defaults test checks it is kept.)
constexpr std::string_view kListenerOn8080 = "[[listeners]]\nport = 8080\n";

TEST_F(ConfigTest, MinimalConfigGetsDefaults) {
  auto config =
      parse(std::string(kListenerOn8080) + "[[routes]]\npath = \"/echo\"\nadapter = \"echo\"\n");
  ASSERT_EQ(config.listeners.size(), 1u);
  EXPECT_EQ(config.listeners[0].address, "127.0.0.1");
  EXPECT_EQ(config.listeners[0].port, 8080);
  EXPECT_EQ(config.listeners[0].compression.mode, CompressionMode::kShared);
  EXPECT_EQ(config.listeners[0].compression.threshold, 128u);
  EXPECT_EQ(config.listeners[0].compression.window_bits, 15);
  EXPECT_EQ(config.listeners[0].compression.level, 1);
  ASSERT_EQ(config.routes.size(), 1u);
  const RouteConfig& route = config.routes[0];
  EXPECT_EQ(route.path, "/echo");
  EXPECT_EQ(route.max_message_bytes, 1024u * 1024u);
  EXPECT_EQ(route.ping_interval, 30s);
  EXPECT_EQ(route.idle_timeout, 60s);
  EXPECT_EQ(route.max_queued_bytes, 16u * 1024 * 1024);
  EXPECT_EQ(route.queue_high_water_bytes, 8u * 1024 * 1024);  // half of max_queued_bytes
  ASSERT_NE(route.adapter, nullptr);
  EXPECT_EQ(config.find_route("/echo"), &route);
  EXPECT_EQ(config.find_route("/other"), nullptr);
  EXPECT_EQ(config.log_level, LogLevel::kInfo);
  EXPECT_EQ(config.shutdown_timeout, 5s);
}

TEST_F(ConfigTest, ReadsEveryCoreKey) {
  auto config = parse(R"(
[server]
log_level = "debug"
shutdown_timeout = "1500ms"
[[listeners]]
address = "::1"
port = 9001
permessage_deflate = false
[[routes]]
path = "/a/b"
adapter = "echo"
prefix = ">"
max_message_bytes = "64KiB"
max_queued_bytes = 4096
ping_interval = 2
idle_timeout = "5s"
)");
  EXPECT_EQ(config.log_level, LogLevel::kDebug);
  EXPECT_EQ(config.shutdown_timeout, 1500ms);
  EXPECT_EQ(config.listeners[0].address, "::1");
  EXPECT_EQ(config.listeners[0].compression.mode, CompressionMode::kOff);  // the old key
  EXPECT_EQ(config.routes[0].max_message_bytes, 65536u);
  EXPECT_EQ(config.routes[0].max_queued_bytes, 4096u);
  EXPECT_EQ(config.routes[0].ping_interval, 2s);
  EXPECT_EQ(config.routes[0].idle_timeout, 5s);
  EXPECT_EQ(config.routes[0].queue_high_water_bytes, 2048u);  // half, when not configured
}

TEST_F(ConfigTest, QueueHighWaterMark) {
  const std::string route =
      std::string(kListenerOn8080) + "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\n";
  auto config = parse(route + "max_queued_bytes = \"1MiB\"\nqueue_high_water_bytes = \"900KiB\"\n");
  EXPECT_EQ(config.routes[0].queue_high_water_bytes, 900u * 1024);
  EXPECT_EQ(error_of(route + "max_queued_bytes = 4096\nqueue_high_water_bytes = 5000\n"),
            "test.toml:7:26: 'queue_high_water_bytes' must not exceed 'max_queued_bytes' (4096)");
  EXPECT_NE(error_of(route + "queue_high_water_bytes = \"much\"\n")
                .find("test.toml:6:26: 'queue_high_water_bytes' in [[routes]] #1 is not a valid "
                      "size"),
            std::string::npos);
}

TEST_F(ConfigTest, ThreadsAreAutoOrACount) {
  const std::string routes =
      std::string(kListenerOn8080) + "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\n";
  auto automatic = parse(routes);
  EXPECT_EQ(automatic.threads, 0u);
  EXPECT_GE(automatic.effective_threads(), 1u);
  EXPECT_EQ(parse("[server]\nthreads = \"auto\"\n" + routes).threads, 0u);
  auto two = parse("[server]\nthreads = 2\n" + routes);
  EXPECT_EQ(two.threads, 2u);
  EXPECT_EQ(two.effective_threads(), 2u);
  EXPECT_EQ(two.http_client->shards(), 2u) << "one HTTP pool per shard";
  EXPECT_EQ(error_of("[server]\nthreads = 0\n" + routes),
            "test.toml:2:11: 'threads' in [server] must be between 1 and 256, not 0");
  EXPECT_EQ(error_of("[server]\nthreads = 257\n" + routes),
            "test.toml:2:11: 'threads' in [server] must be between 1 and 256, not 257");
  EXPECT_EQ(error_of("[server]\nthreads = \"many\"\n" + routes),
            "test.toml:2:11: 'threads' in [server] must be \"auto\" or a number of threads from 1 "
            "to 256");
  EXPECT_EQ(error_of("[server]\nthreads = 1.5\n" + routes),
            "test.toml:2:11: 'threads' in [server] must be an integer, not a float");
}

TEST_F(ConfigTest, SyntaxErrorHasPosition) {
  EXPECT_EQ(error_of("[[listeners]]\nport = = 8080\n").rfind("test.toml:2:", 0), 0u);
  EXPECT_NE(error_of("[[listeners]]\nport = = 8080\n").find("syntax error"), std::string::npos);
}

TEST_F(ConfigTest, UnknownTopLevelKey) {
  EXPECT_EQ(error_of("\n  bogus = 1\n" + std::string(kListenerOn8080)),
            "test.toml:2:3: unknown key 'bogus' in the top level");
  // After a [[listeners]] header the key belongs to that listener.
  EXPECT_EQ(error_of(std::string(kListenerOn8080) + "\nbogus = 1\n"),
            "test.toml:4:1: unknown key 'bogus' in [[listeners]] #1");
}

TEST_F(ConfigTest, UnknownKeyInServerAndListener) {
  EXPECT_EQ(error_of("[server]\nlog_levle = \"info\"\n" + std::string(kListenerOn8080)),
            "test.toml:2:1: unknown key 'log_levle' in [server]; did you mean 'log_level'?");
  EXPECT_EQ(error_of("[[listeners]]\nport = 1\n  adress = \"::\"\n"),
            "test.toml:3:3: unknown key 'adress' in [[listeners]] #1; did you mean 'address'?");
}

TEST_F(ConfigTest, UnknownKeyInRouteIsReportedAfterTheAdapterReadItsKeys) {
  EXPECT_EQ(
      error_of(std::string(kListenerOn8080) +
               "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\nprefix = \"x\"\nprefx = \"y\"\n"),
      "test.toml:7:1: unknown key 'prefx' in route \"/e\"; did you mean 'prefix'?");
}

TEST_F(ConfigTest, WrongType) {
  EXPECT_EQ(error_of("[[listeners]]\nport = \"8080\"\n"),
            "test.toml:2:8: 'port' in [[listeners]] #1 must be an integer, not a string");
  EXPECT_EQ(
      error_of(std::string(kListenerOn8080) + "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\n"
                                              "prefix = 3\n"),
      "test.toml:6:10: 'prefix' in route \"/e\" must be a string, not an integer");
}

TEST_F(ConfigTest, BadValues) {
  EXPECT_EQ(error_of("[[listeners]]\nport = 70000\n"),
            "test.toml:2:8: 'port' in [[listeners]] #1 must be between 1 and 65535, not 70000");
  EXPECT_NE(error_of("[[listeners]]\naddress = \"localhost\"\nport = 1\n")
                .find("test.toml:2:11: 'address' in [[listeners]] #1 must be an IPv4 or IPv6"),
            std::string::npos);
  EXPECT_EQ(error_of("[server]\nlog_level = \"loud\"\n" + std::string(kListenerOn8080)),
            "test.toml:2:13: 'log_level' in [server] must be one of \"error\", \"warn\", "
            "\"info\", \"debug\", not \"loud\"");
  EXPECT_NE(
      error_of(std::string(kListenerOn8080) + "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\n"
                                              "max_message_bytes = \"lots\"\n")
          .find("test.toml:6:21: 'max_message_bytes' in [[routes]] #1 is not a valid size"),
      std::string::npos);
  EXPECT_NE(
      error_of(std::string(kListenerOn8080) + "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\n"
                                              "ping_interval = \"soon\"\n")
          .find("test.toml:6:17: 'ping_interval' in [[routes]] #1 is not a valid duration"),
      std::string::npos);
  EXPECT_EQ(
      error_of(std::string(kListenerOn8080) + "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\n"
                                              "ping_interval = 10\nidle_timeout = 5\n"),
      "test.toml:7:16: 'idle_timeout' must be longer than 'ping_interval' in route \"/e\", "
      "so a live peer has time to answer a ping");
  EXPECT_EQ(
      error_of(std::string(kListenerOn8080) + "[[routes]]\npath = \"e\"\nadapter = \"echo\"\n"),
      "test.toml:4:8: route path \"e\" must start with '/'");
  EXPECT_EQ(error_of(std::string(kListenerOn8080) +
                     "[[routes]]\npath = \"/a/../b\"\nadapter = \"echo\"\n"),
            "test.toml:4:8: route path \"/a/../b\" must not contain '.' or '..' segments");
  EXPECT_EQ(error_of(std::string(kListenerOn8080) +
                     "[[routes]]\npath = \"/healthz\"\nadapter = \"echo\"\n"),
            "test.toml:4:8: route path \"/healthz\" is reserved for the health endpoint");
}

TEST_F(ConfigTest, UnknownAdapter) {
  // (Appended, not std::string(view) + literal: GCC 12 -O1 misreads that one as out of bounds.)
  std::string config(kListenerOn8080);
  config += "[[routes]]\npath = \"/m\"\nadapter = \"mqtt5\"\n";
  EXPECT_EQ(error_of(config),
            "test.toml:5:11: unknown adapter \"mqtt5\" (known: echo, http, mqtt)");
}

TEST_F(ConfigTest, DuplicatePathAndListener) {
  EXPECT_EQ(
      error_of(std::string(kListenerOn8080) + "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\n"
                                              "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\n"),
      "test.toml:7:8: duplicate route path \"/e\"");
  EXPECT_EQ(error_of(std::string(kListenerOn8080) + std::string(kListenerOn8080)),
            "test.toml:4:8: listener 127.0.0.1:8080 overlaps the listener 127.0.0.1:8080 at "
            "test.toml:2:8: both would bind port 8080 (the same listener twice)");
}

TEST_F(ConfigTest, MissingRequiredKeys) {
  EXPECT_EQ(error_of(""),
            "test.toml:1:1: no listeners: add at least one [[listeners]] table with a 'port'");
  EXPECT_EQ(error_of("[[listeners]]\naddress = \"::\"\n"),
            "test.toml:1:1: missing required key 'port' in [[listeners]] #1");
  EXPECT_EQ(error_of(std::string(kListenerOn8080) + "[[routes]]\npath = \"/e\"\n"),
            "test.toml:3:1: missing required key 'adapter' in [[routes]] #1");
}

TEST_F(ConfigTest, StaticDirMustExist) {
  EXPECT_NE(error_of("[server]\nstatic_dir = \"/nonexistent/dir\"\n" + std::string(kListenerOn8080))
                .find("test.toml:2:14: 'static_dir' in [server]: /nonexistent/dir is not"),
            std::string::npos);
}

TEST_F(ConfigTest, MissingFile) {
  try {
    load_config_file("/nonexistent/wsbridge.toml", registry_);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(
        e.what(),
        "/nonexistent/wsbridge.toml: cannot open the config file: No such file or directory");
  }
}

}  // namespace
}  // namespace wsbridge
