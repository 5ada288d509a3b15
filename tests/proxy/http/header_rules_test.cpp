// Which header names a client may send (proxy/src/http/header_rules.cpp), spelling by spelling.
// Regression test for #13.3; the end-to-end one is in
// tests/regression/http_regression_test.cpp.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "wsbridge/header_rules.hpp"

namespace wsbridge {
namespace {

// #13.3: the header classes, spelling by spelling.
TEST(HttpHeaderRulesTest, NamesAreComparedAsBackendsReadThem) {
  EXPECT_EQ(http::canonical_header_name("X_Forwarded.For"), "x-forwarded-for");
  for (const char* name :
       {"Host", "HOST", "content_length", "Transfer-Encoding", "Connection", "keep_alive", "TE",
        "Upgrade", "Proxy-Authorization", "proxy_connection", "X-Forwarded-For", "x_forwarded_for",
        "X.Forwarded.For", "X-Request-Id", "X_Request_ID", "X-Wsbridge-User", "X_Wsbridge_User",
        "x_wsbridge_connection", "X-Wsbridge-Anything"}) {
    EXPECT_EQ(http::classify_header(name), http::HeaderClass::kReserved) << name;
    EXPECT_TRUE(http::reserved_header(name)) << name;
  }
  for (const char* name :
       {"X-HTTP-Method-Override", "x_http_method_override", "X-HTTP-Method", "X-Method-Override",
        "X-Original-URL", "X-Original-URI", "X_Rewrite_Url", "X-Real-IP", "x_real_ip",
        "True-Client-IP", "X-Client-IP", "X-Forwarded-Host", "X-Forwarded-Proto",
        "X_Forwarded_Port", "X-Forwarded-Prefix", "Forwarded", "X-Cluster-Client-IP",
        "CF-Connecting-IP", "Fastly-Client-IP", "X-Remote-User", "Remote_User", "X-Envoy-Internal",
        "X-Amzn-Oidc-Data", "X-Goog-Authenticated-User-Email", "X-MS-Client-Principal-Name",
        "X-Auth-Request-Email", "X-Forwarded-User",
        // Auth proxies' users and groups, and TLS terminators' client
        // certificates (a second probe found them passing).
        "Remote-Groups", "Remote-Email", "X-Remote-Group", "X-Remote-Extra-Scopes",
        "X-Webauth-Role", "Cf-Access-Authenticated-User-Email", "X-Consumer-Username",
        "X-Authenticated-Userid", "X-Auth-User", "X-User", "X-Proxy-User", "X-Userinfo",
        "X-Jwt-Assertion", "X-Pomerium-Jwt-Assertion", "X-Goog-Iap-Jwt-Assertion",
        "X-Ssl-Client-Verify", "X-Client-Cert", "Ssl-Client-Cert", "X-Arr-ClientCert", "Https"}) {
    EXPECT_EQ(http::classify_header(name), http::HeaderClass::kTrusted) << name;
  }
  for (const char* name : {"X-HTTP-Method-Override", "x_http_method", "X-Method-Override"}) {
    EXPECT_TRUE(http::overrides_method(name)) << name;
  }
  EXPECT_FALSE(http::overrides_method("X-Method"));
  for (const char* name : {"Accept", "Content-Type", "Authorization", "Cookie", "X-Trace",
                           "X_Trace", "If-None-Match", "Host2", "X-Hostname"}) {
    EXPECT_EQ(http::classify_header(name), http::HeaderClass::kOrdinary) << name;
  }
  EXPECT_EQ(http::describe_header("X_Real_IP"), "X_Real_IP (read by backends as x-real-ip)");
  EXPECT_EQ(http::describe_header("X-Real-IP"), "X-Real-IP");
  // The hook's copy: a proxy in front may set the usual spellings; disguised ones are dropped.
  EXPECT_TRUE(http::hook_may_see_header("X-Forwarded-For"));
  EXPECT_TRUE(http::hook_may_see_header("Cookie"));
  EXPECT_TRUE(http::hook_may_see_header("X_Trace"));
  for (const char* name : {"X_Forwarded_For", "X-Wsbridge-User", "x_wsbridge_user", "X_Real_Ip",
                           "Sec-WebSocket-Key", "Connection"}) {
    EXPECT_FALSE(http::hook_may_see_header(name)) << name;
  }
}

}  // namespace
}  // namespace wsbridge
