// [[proxy]] tables (proxy/src/config/proxy_keys.cpp) and the one path space they share with
// routes, /healthz and /_wsbridge/ (ServerConfig::proxy_for; docs/PROXY.md).
#include <gtest/gtest.h>

#include "proxy/config/config_fixture.hpp"

namespace wsbridge {
namespace {

using ProxyKeysTest = testing::ConfigTest;
using reverse_proxy::HostMode;

using testing::kListener;

std::string proxy(const std::string& path, const std::string& backend,
                  const std::string& more = "") {
  return "[[proxy]]\npath = \"" + path + "\"\nbackend = \"" + backend + "\"\n" + more;
}

TEST_F(ProxyKeysTest, DefaultsAreDocumented) {
  auto config = parse(kListener + proxy("/app", "http://127.0.0.1:8081"));
  ASSERT_EQ(config.proxies.size(), 1u);
  const auto& p = *config.proxies[0];
  EXPECT_EQ(p.path, "/app");
  EXPECT_EQ(p.backend.host, "127.0.0.1");
  EXPECT_EQ(p.backend.port, 8081);
  EXPECT_EQ(p.backend.path, "");
  EXPECT_TRUE(p.http);
  EXPECT_TRUE(p.websocket);
  EXPECT_FALSE(p.strip_prefix);
  EXPECT_EQ(p.host_mode, HostMode::kClient);
  EXPECT_TRUE(p.forward_identity);
  EXPECT_FALSE(p.has_auth);
  EXPECT_EQ(p.max_body_bytes, 16u * 1024 * 1024);
  EXPECT_EQ(p.connect_timeout, std::chrono::seconds(5));
  EXPECT_EQ(p.response_timeout, std::chrono::seconds(60));
  EXPECT_EQ(p.idle_timeout, std::chrono::seconds(60));
  EXPECT_EQ(p.websocket_idle_timeout, std::chrono::hours(1));
  EXPECT_EQ(p.max_connections, 256u);
  ASSERT_NE(p.endpoint, nullptr);
  EXPECT_EQ(p.endpoint->url(), "tcp://127.0.0.1:8081");
}

TEST_F(ProxyKeysTest, EveryKeyLoads) {
  auto config = parse(
      kListener + "[jwt.main]\nsecret = \"0123456789abcdef0123456789abcdef\"\n" +
      proxy("/api/v1", "https://[::1]:8443/base/",
            "strip_prefix = true\nhost_header = \"backend\"\nwebsocket = false\n"
            "forward_identity = false\nmax_body_bytes = \"200MiB\"\nconnect_timeout = \"1s\"\n"
            "response_timeout = \"2s\"\nidle_timeout = \"3s\"\nwebsocket_idle_timeout = \"0s\"\n"
            "max_connections = 8\nkeepalive_timeout = \"4s\"\nverify_backend = false\n"
            "[proxy.auth]\njwt = \"main\"\n"));
  const auto& p = *config.proxies[0];
  EXPECT_TRUE(p.backend.tls);
  EXPECT_EQ(p.backend.host, "::1");
  EXPECT_EQ(p.backend.path, "/base/");
  EXPECT_TRUE(p.strip_prefix);
  EXPECT_EQ(p.host_mode, HostMode::kBackend);
  EXPECT_FALSE(p.websocket);
  EXPECT_FALSE(p.forward_identity);
  EXPECT_EQ(p.max_body_bytes, 200u * 1024 * 1024);
  EXPECT_EQ(p.connect_timeout, std::chrono::seconds(1));
  EXPECT_EQ(p.response_timeout, std::chrono::seconds(2));
  EXPECT_EQ(p.idle_timeout, std::chrono::seconds(3));
  EXPECT_EQ(p.websocket_idle_timeout, std::chrono::seconds(0));
  EXPECT_EQ(p.max_connections, 8u);
  EXPECT_EQ(p.keepalive_timeout, std::chrono::seconds(4));
  EXPECT_FALSE(p.verify_backend);
  EXPECT_TRUE(p.has_auth);
  EXPECT_TRUE(p.auth.required);
  EXPECT_EQ(p.endpoint->url(), "ssl://[::1]:8443");
}

TEST_F(ProxyKeysTest, AFixedHostHeaderIsSentAsItIs) {
  auto config =
      parse(kListener + proxy("/", "http://127.0.0.1:1", "host_header = \"app.example.com\"\n"));
  EXPECT_EQ(config.proxies[0]->host_mode, HostMode::kFixed);
  EXPECT_EQ(config.proxies[0]->host_value, "app.example.com");
  EXPECT_NE(error_of(kListener + proxy("/", "http://127.0.0.1:1", "host_header = \"a b\"\n"))
                .find("'host_header' must be"),
            std::string::npos);
}

TEST_F(ProxyKeysTest, WebSocketBackendsTakeOnlyUpgrades) {
  auto config = parse(kListener + proxy("/ws", "wss://127.0.0.1:9443/socket"));
  const auto& p = *config.proxies[0];
  EXPECT_FALSE(p.http);
  EXPECT_TRUE(p.websocket);
  EXPECT_TRUE(p.backend.tls);
  EXPECT_EQ(p.backend.path, "/socket");
  EXPECT_EQ(config.proxy_for("/ws", true), &p);
  EXPECT_EQ(config.proxy_for("/ws", false), nullptr);
  EXPECT_NE(error_of(kListener + proxy("/ws", "ws://127.0.0.1:1", "websocket = false\n"))
                .find("leaves it nothing"),
            std::string::npos);
}

TEST_F(ProxyKeysTest, BadTablesAreRefusedWithTheirPositions) {
  EXPECT_NE(error_of(kListener + "[[proxy]]\npath = \"/a\"\n").find("'backend'"),
            std::string::npos);
  EXPECT_NE(error_of(kListener + proxy("/a", "ftp://127.0.0.1")).find("test.toml:5:11: 'backend'"),
            std::string::npos);
  EXPECT_NE(error_of(kListener + proxy("a", "http://127.0.0.1")).find("must start with '/'"),
            std::string::npos);
  EXPECT_NE(error_of(kListener + proxy("/a/", "http://127.0.0.1")).find("must not end with '/'"),
            std::string::npos);
  EXPECT_NE(error_of(kListener + proxy("/a/../b", "http://127.0.0.1")).find("'..' segments"),
            std::string::npos);
  EXPECT_NE(error_of(kListener + proxy("/v1.", "http://127.0.0.1"))
                .find("proxy path \"/v1.\" would never match: requests are matched decoded (write "
                      "\"/v1\")"),
            std::string::npos);
  EXPECT_NE(error_of(kListener + proxy("/%61pp", "http://127.0.0.1")).find("(write \"/app\")"),
            std::string::npos);
  EXPECT_NE(error_of(kListener + proxy("/a;b", "http://127.0.0.1")).find("must not contain ';'"),
            std::string::npos);
  EXPECT_NE(error_of(kListener + proxy("/healthz", "http://127.0.0.1")).find("health endpoint"),
            std::string::npos);
  EXPECT_NE(error_of(kListener + proxy("/_wsbridge", "http://127.0.0.1")).find("reserve"),
            std::string::npos);
  EXPECT_NE(error_of(kListener + proxy("/_wsbridge/x", "http://127.0.0.1")).find("reserve"),
            std::string::npos);
  EXPECT_NE(error_of(kListener + proxy("/a", "http://127.0.0.1") + proxy("/a", "http://127.0.0.2"))
                .find("duplicate proxy path \"/a\""),
            std::string::npos);
  EXPECT_NE(error_of(kListener + proxy("/a", "http://127.0.0.1", "colour = 1\n")).find("colour"),
            std::string::npos);
  EXPECT_NE(error_of(kListener + proxy("/a", "http://127.0.0.1", "[proxy.auth]\nshade = 1\n"))
                .find("shade"),
            std::string::npos);
  EXPECT_NE(
      error_of(kListener + proxy("/a", "https://127.0.0.1", "ca_file = \"/nonexistent.pem\"\n"))
          .find("/nonexistent.pem"),
      std::string::npos);
  EXPECT_NE(error_of(kListener + proxy("/a", "http://127.0.0.1", "max_connections = 0\n"))
                .find("max_connections"),
            std::string::npos);
}

TEST_F(ProxyKeysTest, TheLongestCoveringPrefixWins) {
  auto config = parse(kListener + proxy("/", "http://127.0.0.1:1") +
                      proxy("/api", "http://127.0.0.1:2") + proxy("/api/v2", "http://127.0.0.1:3"));
  ASSERT_EQ(config.proxies.size(), 3u);
  auto backend_of = [&](std::string_view path) {
    const auto* p = config.proxy_for(path, false);
    return p != nullptr ? static_cast<int>(p->backend.port) : 0;
  };
  EXPECT_EQ(backend_of("/"), 1);
  EXPECT_EQ(backend_of("/index.html"), 1);
  EXPECT_EQ(backend_of("/api"), 2);
  EXPECT_EQ(backend_of("/api/"), 2);
  EXPECT_EQ(backend_of("/api/users"), 2);
  EXPECT_EQ(backend_of("/apix"), 1);  // segments, not characters
  EXPECT_EQ(backend_of("/api/v2"), 3);
  EXPECT_EQ(backend_of("/api/v2/x"), 3);
  EXPECT_EQ(backend_of("/api/v20"), 2);
  // As a backend reads the path: encoded characters decoded, runs of '/' merged. Matched on
  // the path as sent, these reached "/" and its checks instead of the prefix that guards them.
  EXPECT_EQ(backend_of("/%61pi/users"), 2);
  EXPECT_EQ(backend_of("//api/users"), 2);
  EXPECT_EQ(backend_of("/api%2Fv2/x"), 3);
  EXPECT_EQ(backend_of("/api//v2"), 3);
  EXPECT_EQ(backend_of("/API/users"), 1);              // case-sensitive, as nginx's prefixes
  EXPECT_EQ(backend_of("/api;jsessionid=1/v2/x"), 3);  // Java servers drop ;parameters
  EXPECT_EQ(backend_of("/;x%2Fy/api/users"), 2);       // ... up to a literal '/
}

TEST_F(ProxyKeysTest, TheCoreAndWebSocketRoutesComeFirst) {
  auto config = parse(kListener + "[[routes]]\npath = \"/echo\"\nadapter = \"echo\"\n" +
                      proxy("/", "http://127.0.0.1:1"));
  EXPECT_EQ(config.proxy_for("/healthz", false), nullptr);
  EXPECT_EQ(config.proxy_for("/_wsbridge/sse", false), nullptr);
  EXPECT_EQ(config.proxy_for("/_wsbridge", false), nullptr);
  EXPECT_EQ(config.proxy_for("/echo", true), nullptr);
  EXPECT_EQ(config.proxy_for("/echo", false), nullptr);
  EXPECT_NE(config.proxy_for("/echo/x", false), nullptr);  // routes are exact paths
  EXPECT_NE(config.proxy_for("/healthz2", false), nullptr);
  EXPECT_NE(config.proxy_for("/other", true), nullptr);
  EXPECT_EQ(config.proxy_for("/%65cho", true), nullptr);  // lws decodes it to the route's path
  EXPECT_EQ(config.proxy_for("//healthz", false), nullptr);
}

TEST_F(ProxyKeysTest, ANonAsciiPrefixMatchesItsEncodedForm) {
  auto config = parse(kListener + proxy("/caf\xc3\xa9", "http://127.0.0.1:1"));
  EXPECT_NE(config.proxy_for("/caf%C3%A9/menu", false), nullptr);
  EXPECT_EQ(config.proxy_for("/cafe/menu", false), nullptr);
  EXPECT_NE(error_of(kListener + proxy("/a\u0085b", "http://127.0.0.1:1"))
                .find("must not contain control characters"),
            std::string::npos);
  EXPECT_NE(error_of(kListener + proxy("/a\u202eb", "http://127.0.0.1:1"))
                .find("must not contain control characters"),
            std::string::npos);
}

TEST_F(ProxyKeysTest, AllowClientHeadersTakesOnlyHeadersTheProxyWouldDrop) {
  auto config =
      parse(kListener + proxy("/", "http://127.0.0.1:1",
                              "allow_client_headers = [\"X-Real-IP\", \"Remote_User\"]\n"));
  EXPECT_EQ(config.proxies[0]->allow_client_headers,
            (std::vector<std::string>{"x-real-ip", "remote-user"}));
  for (const char* name :
       {"X-Forwarded-For", "X-Forwarded-Proto", "Forwarded", "X-Wsbridge-User"}) {
    EXPECT_NE(
        error_of(kListener + proxy("/", "http://127.0.0.1:1",
                                   "allow_client_headers = [\"" + std::string(name) + "\"]\n"))
            .find("set by wsbridge"),
        std::string::npos)
        << name;
  }
  EXPECT_NE(error_of(kListener +
                     proxy("/", "http://127.0.0.1:1", "allow_client_headers = [\"X-Custom\"]\n"))
                .find("nothing to allow"),
            std::string::npos);
}

TEST_F(ProxyKeysTest, WithoutProxiesNothingIsRelayed) {
  auto config = parse(kListener);
  EXPECT_TRUE(config.proxies.empty());
  EXPECT_EQ(config.proxy_for("/", false), nullptr);
}

}  // namespace
}  // namespace wsbridge
