// The keys of running as one of several instances (proxy/src/config/scale_out_keys.cpp):
// [server] instance_id, drain_delay, reconnect_spread, and [cluster], with errors at positions.
#include <gtest/gtest.h>

#include <cstdlib>

#include "proxy/config/config_fixture.hpp"

namespace wsbridge {
namespace {

using ScaleOutKeysTest = testing::ConfigTest;

using testing::kListener;
const std::string kSecret = "0123456789abcdef0123456789abcdef";

TEST_F(ScaleOutKeysTest, DefaultsNameTheHostAndProcess) {
  auto config = parse(std::string(kListener));
  EXPECT_NE(config.instance_id.find(':' + std::to_string(getpid())), std::string::npos)
      << config.instance_id;
  EXPECT_EQ(config.drain_delay, std::chrono::milliseconds(0));
  EXPECT_EQ(config.reconnect_spread, std::chrono::seconds(10));
  EXPECT_FALSE(config.cluster.enabled);
  EXPECT_EQ(config.cluster.control_prefix, "$wsbridge");
}

TEST_F(ScaleOutKeysTest, ServerAndClusterKeysLoad) {
  auto config = parse(
      "[server]\ninstance_id = \"web-1\"\ndrain_delay = \"3s\"\nreconnect_spread = \"20s\"\n"
      "[cluster]\nbroker = \"tcp://127.0.0.1:1883\"\nsecret = \"" +
      kSecret + "\"\ncontrol_prefix = \"$corp/wsb\"\nrequest_timeout = \"500ms\"\n" +
      "presence_interval = \"5s\"\n" + std::string(kListener));
  EXPECT_EQ(config.instance_id, "web-1");
  EXPECT_EQ(config.drain_delay, std::chrono::seconds(3));
  EXPECT_EQ(config.reconnect_spread, std::chrono::seconds(20));
  EXPECT_TRUE(config.cluster.enabled);
  EXPECT_EQ(config.cluster.broker, "tcp://127.0.0.1:1883");
  EXPECT_EQ(config.cluster.control_prefix, "$corp/wsb");
  EXPECT_EQ(config.cluster.request_timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(config.cluster.presence_interval, std::chrono::seconds(5));
}

TEST_F(ScaleOutKeysTest, TheSecretMayComeFromTheEnvironment) {
  setenv("WSBRIDGE_TEST_CLUSTER_SECRET", kSecret.c_str(), 1);
  auto config =
      parse("[cluster]\nbroker = \"tcp://h:1\"\nsecret_env = \"WSBRIDGE_TEST_CLUSTER_SECRET\"\n" +
            std::string(kListener));
  EXPECT_EQ(config.cluster.secret, kSecret);
  unsetenv("WSBRIDGE_TEST_CLUSTER_SECRET");
}

TEST_F(ScaleOutKeysTest, BadValuesSayWhereAndWhy) {
  EXPECT_EQ(error_of("[server]\ninstance_id = \"a@b\"\n" + std::string(kListener)),
            "test.toml:2:15: 'instance_id' in [server] is 1 to 64 letters, digits, '.', '_', ':' "
            "or '-'");
  EXPECT_EQ(error_of("[server]\ntrusted_proxies = [\"10.0.0.0/40\"]\n" + std::string(kListener)),
            "test.toml:2:19: 'trusted_proxies' in [server]: \"10.0.0.0/40\" is not an IP address "
            "or network (e.g. \"10.0.0.7\", \"10.0.0.0/8\", \"fd00::/8\")");
  EXPECT_NE(error_of("[cluster]\nbroker = \"tcp://h:1\"\n" + std::string(kListener))
                .find("missing required key 'secret' in [cluster]"),
            std::string::npos);
  EXPECT_EQ(
      error_of("[cluster]\nbroker = \"tcp://h:1\"\nsecret = \"short\"\n" + std::string(kListener)),
      "test.toml:3:10: 'secret' in [cluster] must be at least 32 bytes");
  EXPECT_EQ(error_of("[cluster]\nbroker = \"http://h:1\"\nsecret = \"" + kSecret + "\"\n" +
                     std::string(kListener)),
            "test.toml:2:10: 'broker' in [cluster] is \"tcp://host:port\" or \"ssl://host:port\"");
  for (const char* prefix : {"wsbridge", "$", "$a/", "$a/#", "$a//b"}) {
    EXPECT_NE(
        error_of("[cluster]\nbroker = \"tcp://h:1\"\nsecret = \"" + kSecret +
                 "\"\ncontrol_prefix = \"" + prefix + "\"\n" + std::string(kListener))
            .find("test.toml:4:18: 'control_prefix' in [cluster] is a topic starting with '$'"),
        std::string::npos)
        << prefix;
  }
  EXPECT_NE(error_of("[cluster]\nbroker = \"tcp://h:1\"\nsecret = \"" + kSecret +
                     "\"\npresence_interval = \"500ms\"\n" + std::string(kListener))
                .find("test.toml:4:21: 'presence_interval' in [cluster]"),
            std::string::npos);
  EXPECT_NE(error_of("[cluster]\nbroker = \"tcp://h:1\"\nsecret = \"" + kSecret + "\"\nport = 1\n" +
                     std::string(kListener))
                .find("unknown key 'port'"),
            std::string::npos);
}

TEST_F(ScaleOutKeysTest, NoRouteAclMayReachTheControlTopics) {
  const std::string upstream = "[upstreams.local]\nuri = \"tcp://127.0.0.1:1883\"\n";
  const std::string route = "[[routes]]\npath = \"/m\"\nadapter = \"mqtt\"\nupstream = \"local\"\n";
  // The default prefix, and a configured one.
  EXPECT_NE(error_of(upstream + std::string(kListener) + route +
                     "allow_subscribe = [\"#\", \"$wsbridge/#\"]\n")
                .find("ACL pattern \"$wsbridge/#\" reaches \"$wsbridge\""),
            std::string::npos);
  EXPECT_NE(error_of("[cluster]\nbroker = \"tcp://h:1\"\nsecret = \"" + kSecret +
                     "\"\ncontrol_prefix = \"$ops\"\n" + upstream + std::string(kListener) + route +
                     "allow_publish = [\"$ops/+/x\"]\n")
                .find("reaches \"$ops\""),
            std::string::npos);
  EXPECT_NE(error_of(upstream + std::string(kListener) + route + "topic_prefix = \"$wsbridge/\"\n")
                .find("'topic_prefix' \"$wsbridge/\" reaches"),
            std::string::npos);
  EXPECT_NE(error_of(upstream + std::string(kListener) +
                     "[[routes]]\npath = \"/p\"\nadapter = \"mqtt\"\nmode = \"passthrough\"\n"
                     "upstream = \"local\"\nallow_subscribe = [\"$share/+/#\"]\n")
                .find("ACL pattern \"$share/+/#\" reaches"),
            std::string::npos);
  // Wildcards never match '$' topics: these load.
  parse(upstream + std::string(kListener) + route +
        "allow_subscribe = [\"#\", \"+/x\", \"$SYS/#\", \"$wsbridgex/#\"]\n");
}

}  // namespace
}  // namespace wsbridge
