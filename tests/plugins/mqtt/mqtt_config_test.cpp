// The mqtt adapter's configuration (plugins/mqtt/mqtt_config.cpp): upstreams and route keys,
// errors with their positions.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>

#include "mqtt_config.hpp"
#include "passthrough/passthrough_config.hpp"

namespace wsbridge::mqtt {
namespace {

class MqttConfigTest : public ::testing::Test {
 protected:
  std::map<std::string, UpstreamConfig> upstreams(std::string_view text) {
    root_ = toml::parse(text, std::string_view("u.toml"));
    ConfigTable top(root_, "u.toml", "the top level");
    std::map<std::string, UpstreamConfig> out;
    for (auto& [name, t] : top.named_tables("upstreams")) {
      out.emplace(name, UpstreamConfig::from_table(name, t));
    }
    return out;
  }
  MqttRouteConfig route(std::string_view text, std::size_t max_topic_levels = 128) {
    route_root_ = toml::parse(text, std::string_view("r.toml"));
    ConfigTable t(route_root_, "r.toml", "route \"/m\"");
    UpstreamConfig local;
    local.name = "local";
    local.max_topic_levels = max_topic_levels;
    auto r = MqttRouteConfig::from_route(t, "/m", {{"local", local}});
    t.reject_unknown_keys();
    return r;
  }
  PassthroughRouteConfig passthrough(std::string_view text) {
    route_root_ = toml::parse(text, std::string_view("r.toml"));
    ConfigTable t(route_root_, "r.toml", "route \"/p\"");
    UpstreamConfig local;
    local.name = "local";
    auto r = PassthroughRouteConfig::from_route(t, "/p", {{"local", local}});
    t.reject_unknown_keys();
    return r;
  }
  template <typename F>
  std::string error_of(F&& f) {
    try {
      f();
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "no error";
  }
  toml::table root_, route_root_;
};

TEST_F(MqttConfigTest, UpstreamDefaultsAndKeys) {
  setenv("WSBRIDGE_TEST_MQTT_PASSWORD", "pw", 1);
  auto u = upstreams(R"(
[upstreams.a]
uri = "tcp://127.0.0.1:1883"
[upstreams.b]
uri = "tcp://broker:1883"
username = "bridge"
password_env = "WSBRIDGE_TEST_MQTT_PASSWORD"
keepalive = "15s"
mqtt_version = "5"
max_buffered_publishes = 5
session_window = 1000
publish_window = 10
max_topic_levels = 200
max_packet_bytes = "64KiB"
)");
  EXPECT_EQ(u.at("a").mqtt_version, 4);
  EXPECT_EQ(u.at("a").session_window, 256u);  // the windows that were constants before #14.4
  EXPECT_EQ(u.at("a").publish_window, 64u);
  EXPECT_EQ(u.at("b").session_window, 1000u);
  EXPECT_EQ(u.at("b").publish_window, 10u);
  EXPECT_EQ(u.at("a").keepalive, std::chrono::seconds(30));
  EXPECT_EQ(u.at("a").max_buffered_publishes, 1000u);
  EXPECT_EQ(u.at("b").password, "pw");
  EXPECT_EQ(u.at("b").username, "bridge");
  EXPECT_EQ(u.at("b").mqtt_version, 5);
  EXPECT_EQ(u.at("b").keepalive, std::chrono::seconds(15));
  EXPECT_EQ(u.at("b").max_buffered_publishes, 5u);
  EXPECT_EQ(u.at("a").max_topic_levels, 128u);
  EXPECT_EQ(u.at("b").max_topic_levels, 200u);
  EXPECT_EQ(u.at("a").max_packet_bytes, 1024u * 1024);
  EXPECT_EQ(u.at("b").max_packet_bytes, 64u * 1024);
}

TEST_F(MqttConfigTest, UpstreamErrorsHavePositions) {
  EXPECT_EQ(error_of([&] { upstreams("[upstreams.a]\nuri = \"http://x:1\"\n"); }),
            "u.toml:2:7: 'uri' in [upstreams.a] must start with tcp:// or mqtt:// (plain), "
            "ssl:// or mqtts:// (TLS), e.g. \"tcp://127.0.0.1:1883\"; not \"http://x:1\"");
  // A port out of range and an empty host were accepted, and failed at every connect.
  for (const char* uri : {"tcp://x", "tcp://x:", "tcp://x:0", "tcp://x:99999", "tcp://x:1a"}) {
    EXPECT_EQ(error_of([&] { upstreams("[upstreams.a]\nuri = \"" + std::string(uri) + "\"\n"); }),
              "u.toml:2:7: 'uri' in [upstreams.a] needs a port from 1 to 65535, e.g. "
              "\"tcp://127.0.0.1:1883\"")
        << uri;
  }
  for (const char* uri : {"tcp://:1883", "ssl://[]:8883"}) {
    EXPECT_EQ(error_of([&] { upstreams("[upstreams.a]\nuri = \"" + std::string(uri) + "\"\n"); }),
              "u.toml:2:7: 'uri' in [upstreams.a] needs a host, e.g. \"tcp://127.0.0.1:1883\"")
        << uri;
  }
  upstreams("[upstreams.a]\nuri = \"tcp://[::1]:1883\"\n");  // (accepted)
  EXPECT_EQ(
      error_of([&] { upstreams("[upstreams.a]\nuri = \"tcp://x:1\"\nmqtt_version = \"4\"\n"); }),
      "u.toml:3:16: 'mqtt_version' in [upstreams.a] must be \"3.1.1\" or \"5\", not \"4\"");
  EXPECT_EQ(error_of([&] {
              upstreams("[upstreams.a]\nuri = \"tcp://x:1\"\nca_file = \"/etc/hostname\"\n");
            }),
            "u.toml:3:11: 'ca_file' needs an ssl:// or mqtts:// uri");
  EXPECT_EQ(error_of([&] { upstreams("[upstreams.a]\nuri = \"tcp://x:1\"\nkeepalive_s = 3\n"); }),
            "u.toml:3:1: unknown key 'keepalive_s' in [upstreams.a]; did you mean 'keepalive'?");
  EXPECT_EQ(
      error_of([&] { upstreams("[upstreams.a]\nuri = \"tcp://x:1\"\npublish_window = 101\n"); }),
      "u.toml:3:18: 'publish_window' in [upstreams.a] must be between 1 and 100, not 101");
  EXPECT_EQ(
      error_of([&] { upstreams("[upstreams.a]\nuri = \"tcp://x:1\"\nsession_window = 1\n"); }),
      "u.toml:3:18: 'session_window' in [upstreams.a] must be between 2 and 1000000, not 1");
}

TEST_F(MqttConfigTest, RouteKeysAndErrors) {
  auto r = route(R"(upstream = "local"
topic_prefix = "t1/"
allow_subscribe = ["sensors/{user}/#"]
allow_publish = ["cmd/+"]
max_subscriptions = 3
)");
  EXPECT_EQ(r.topic_prefix, "t1/");
  EXPECT_EQ(r.allow_subscribe, std::vector<std::string>{"sensors/{user}/#"});
  EXPECT_EQ(r.subscriptions.max_filters, 3u);
  EXPECT_EQ(r.mode, RouteMode::kJson);
  EXPECT_EQ(error_of([&] { route("upstream = \"other\"\n"); }),
            "r.toml:1:12: unknown upstream \"other\" (defined: local)");
  EXPECT_EQ(error_of([&] { route("upstream = \"local\"\ntopic_prefix = \"t1\"\n"); }),
            "r.toml:2:16: 'topic_prefix' must end with '/' (e.g. \"tenant1/\"), so a prefix "
            "never joins a browser's first topic level");
  EXPECT_EQ(error_of([&] { route("upstream = \"local\"\nallow_subscribe = [\"a/{nope}\"]\n"); }),
            "r.toml:2:19: ACL pattern \"a/{nope}\" in 'allow_subscribe' of route \"/m\": has an "
            "unknown placeholder {nope} (use {user} or {claim.NAME}; NAME: letters, digits, '_', "
            "'-', '.')");
  EXPECT_EQ(error_of([&] { route("upstream = \"local\"\nallow_publish = [\"a/#/b\"]\n"); }),
            "r.toml:2:17: ACL pattern \"a/#/b\" in 'allow_publish' of route \"/m\": is not a valid "
            "topic filter: it may use '#' only as the whole last level");
  EXPECT_EQ(error_of([&] { route("upstream = \"local\"\nsubscribe = [\"a\"]\n"); }),
            "r.toml:2:13: 'subscribe' is for mode = \"raw\" routes");
  EXPECT_EQ(error_of([&] { route("upstream = \"local\"\nmode = \"raw\"\n"); }),
            "r.toml:1:1: a raw route needs 'subscribe' filters, a 'publish_topic', or both");
  EXPECT_EQ(
      error_of([&] { route("upstream = \"local\"\nmode = \"raw\"\npublish_topic = \"a/+\"\n"); }),
      "r.toml:3:17: 'publish_topic' must not contain wildcards ('+' or '#')");
  // Shared subscriptions never deliver to a JSON or raw route (one broker client for all).
  EXPECT_TRUE(
      error_of(
          [&] { route("upstream = \"local\"\nallow_subscribe = [\"a/#\", \"$share/g/a/#\"]\n"); })
          .starts_with("r.toml:2:19: ACL pattern \"$share/g/a/#\" in 'allow_subscribe' of route "
                       "\"/m\": shared subscriptions ($share/...) are for MQTT clients"));
  EXPECT_TRUE(
      error_of([&] {
        route("upstream = \"local\"\nmode = \"raw\"\nsubscribe = [\"$share/g/a\"]\n");
      }).starts_with("r.toml:3:13: filter \"$share/g/a\" in 'subscribe': shared subscriptions"));
  // Under a prefix "$share" is an ordinary level ("t/$share/g/a").
  EXPECT_EQ(
      route("upstream = \"local\"\ntopic_prefix = \"t/\"\nallow_subscribe = [\"$share/g/#\"]\n")
          .allow_subscribe,
      std::vector<std::string>{"$share/g/#"});
}

// What one connection may subscribe, in the json and passthrough modes: a count, and the bytes
// and levels of its filters together, which follow the count unless set.
TEST_F(MqttConfigTest, SubscriptionBoundsFollowTheCountUnlessSet) {
  const std::string json_route = "upstream = \"local\"\n";
  const std::string pass = "upstream = \"local\"\nmode = \"passthrough\"\n";
  for (const SubscriptionBounds& b :
       {route(json_route).subscriptions, passthrough(pass).subscriptions}) {
    EXPECT_EQ(b.max_filters, 100u);
    EXPECT_EQ(b.max_bytes, 16000u);
    EXPECT_EQ(b.max_levels, 1000u);
  }
  for (const SubscriptionBounds& b :
       {route(json_route + "max_subscriptions = 500\n").subscriptions,
        passthrough(pass + "max_subscriptions = 500\n").subscriptions}) {
    EXPECT_EQ(b.max_filters, 500u);
    EXPECT_EQ(b.max_bytes, 80000u);
    EXPECT_EQ(b.max_levels, 5000u);
  }
  const SubscriptionBounds set =
      passthrough(pass + "max_subscription_bytes = \"1KiB\"\nmax_subscription_levels = 50\n")
          .subscriptions;
  EXPECT_EQ(set.max_filters, 100u);
  EXPECT_EQ(set.max_bytes, 1024u);
  EXPECT_EQ(set.max_levels, 50u);
  EXPECT_EQ(error_of([&] { route(json_route + "max_subscription_levels = 0\n"); }),
            "r.toml:2:27: 'max_subscription_levels' in route \"/m\" must be between 1 and "
            "100000000, not 0");
  EXPECT_EQ(error_of([&] {
              route(
                  "upstream = \"local\"\nmode = \"raw\"\nsubscribe = [\"a\"]\n"
                  "max_subscription_bytes = 100\n");
            }),
            "r.toml:4:26: 'max_subscription_bytes' is for mode = \"json\" routes; a raw route "
            "uses its fixed 'subscribe' and 'publish_topic'");
}

// A raw route's own topics share the upstream's broker connection as clients' topics do: the
// upstream's max_topic_levels bounds them, the prefix's levels included, at load time.
TEST_F(MqttConfigTest, RouteTopicsAreBoundByTheUpstreamsTopicLevels) {
  const std::string raw = "upstream = \"local\"\nmode = \"raw\"\n";
  EXPECT_NO_THROW(route(raw + "topic_prefix = \"t/\"\nsubscribe = [\"a/+/c\"]\n", 4));
  EXPECT_NO_THROW(route(raw + "topic_prefix = \"t/\"\npublish_topic = \"a/b/c\"\n", 4));
  EXPECT_EQ(error_of([&] {
              route(raw + "topic_prefix = \"t/\"\nsubscribe = [\"x\", \"a/b/c/#\"]\n", 4);
            }),
            "r.toml:4:13: filter \"a/b/c/#\" in 'subscribe' has 5 levels with this route's "
            "'topic_prefix', more than its upstream's max_topic_levels (4)");
  EXPECT_EQ(error_of([&] { route(raw + "publish_topic = \"a/b/c/d/e\"\n", 4); }),
            "r.toml:3:17: 'publish_topic' has 5 levels with this route's 'topic_prefix', more "
            "than its upstream's max_topic_levels (4)");
  EXPECT_EQ(error_of([&] { route("upstream = \"local\"\ntopic_prefix = \"a/b/c/d/\"\n", 4); }),
            "r.toml:2:16: 'topic_prefix' leaves no level for a topic: it has 4 levels and its "
            "upstream's max_topic_levels is 4");
  // The default (128) against a filter of 129 levels.
  std::string deep = "a";
  for (int i = 0; i < 128; ++i) deep += "/a";
  EXPECT_NE(
      error_of([&] { route(raw + "subscribe = [\"" + deep + "\"]\n"); }).find("has 129 levels"),
      std::string::npos);
}

// Two (user, client id) pairs never give one broker client id: else one user could take over
// another's session (the broker drops the older connection and hands over its session).
TEST(ClientIdTemplateTest, NoTwoUsersOrClientsShareAnId) {
  const std::string id = "{user}:{client_id}";
  EXPECT_EQ(expand_client_id(id, "alice", true, "dash", "1@a"), "alice:dash") << "as before";
  EXPECT_EQ(expand_client_id(id, "alice", true, "phone:x", "1@a"), "alice:phone:x") << "as before";
  // bob choosing "phone:x" is not user "bob:phone" with "x".
  EXPECT_EQ(expand_client_id(id, "bob:phone", true, "x", "1@a"), "bob%3Aphone:x");
  EXPECT_NE(expand_client_id(id, "bob", true, "phone:x", "1@a"),
            expand_client_id(id, "bob:phone", true, "x", "1@a"));
  EXPECT_EQ(expand_client_id(id, "bob%3Aphone", true, "x", "1@a"), "bob%253Aphone:x");
  // The anonymous are not a user named "anonymous".
  EXPECT_EQ(expand_client_id(id, "", false, "x", "1@a"), "anonymous:x");
  EXPECT_EQ(expand_client_id(id, "anonymous", true, "x", "1@a"), "%61nonymous:x");
  // Nor is a credential that names no user (a token without "sub").
  EXPECT_EQ(expand_client_id(id, "", true, "x", "1@a"), "%authenticated:x");
  // A separator beyond ASCII: whole characters encoded, so the id stays UTF-8.
  EXPECT_EQ(expand_client_id("{user}\u2192{client_id}", "\u2092", true, "x", "1@a"),
            "%E2%82%92\u2192x");
  EXPECT_EQ(expand_client_id("{user}\u2192{client_id}", "a:b", true, "x", "1@a"), "a:b\u2192x");
  // A client id before another placeholder is escaped too; the connection id is wsbridge's.
  EXPECT_EQ(expand_client_id("{client_id}@{user}", "bob", true, "x@y", "1@a"), "x%40y@bob");
  EXPECT_NE(expand_client_id("{client_id}@{user}", "y@bob", true, "x", "1@a"),
            expand_client_id("{client_id}@{user}", "bob", true, "x@y", "1@a"));
  EXPECT_EQ(expand_client_id("wsb-{user}-{connection_id}", "a-b", true, "x", "7@web-1"),
            "wsb-a%2Db-7@web-1");
  // What MQTT strings may not hold, wherever {user} stands (the broker refused the client id,
  // and the client was told "server unavailable" for ever): a certificate CN with U+0085, a
  // noncharacter, a control, a byte that is not UTF-8. Whole characters, so the id stays UTF-8.
  EXPECT_EQ(expand_client_id(id, "bob\xc2\x85", true, "dev", "1@a"), "bob%C2%85:dev");
  EXPECT_EQ(expand_client_id("{client_id}@{user}", "a\xef\xbf\xbf\x01", true, "x", "1@a"),
            "x@a%EF%BF%BF%01");
  EXPECT_EQ(expand_client_id(id, "\xff\xc2\xa0", true, "x", "1@a"), "%FF\xc2\xa0:x");
}

TEST_F(MqttConfigTest, ClientIdPlaceholdersMustBeSeparated) {
  const std::string pass = "upstream = \"local\"\nmode = \"passthrough\"\n";
  EXPECT_EQ(error_of([&] { passthrough(pass + "client_id = \"{user}{client_id}\"\n"); }),
            "r.toml:3:13: 'client_id' placeholders must be separated by text "
            "(\"{user}:{client_id}\"): run together, two users' ids could be the same");
  EXPECT_EQ(passthrough(pass + "client_id = \"{user}/{client_id}\"\n").client_id,
            "{user}/{client_id}");
}

}  // namespace
}  // namespace wsbridge::mqtt
