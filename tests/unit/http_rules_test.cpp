// The http adapter's request rules as pure functions: which rpc paths a client may reach
// (path_rules.hpp) and which header names it may send (header_rules.hpp), spelling by spelling.
// Regression tests for #13.3 and #13.4; the end-to-end ones are in
// tests/regression/http_regression_test.cpp.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "header_rules.hpp"
#include "path_rules.hpp"

namespace wsbridge {
namespace {

// #13.4: the check itself, one function, spelling by spelling.
TEST(HttpPathRulesTest, OneCheckForEveryBackendsReading) {
  const std::vector<std::string> prefixes = {"/api", "/files/"};
  for (const char* ok : {"/api", "/api/", "/api/a/b", "/api?x=1", "/api/a%20b", "/api/%41",
                         "/api/caf%C3%A9", "/api/a.b", "/api/..a", "/api/a..", "/api/100%25",
                         "/api/x?q=..;/%2f", "/files/x", "/api/%23", "/api/%3F"}) {
    std::string why;
    EXPECT_TRUE(http::path_allowed(ok, prefixes, why)) << ok << ": " << why;
  }
  // Refused on every route.
  for (const char* bad : {"api",
                          "",
                          "/api/..;/admin",
                          "/api/%2e%2e;/admin",
                          "/api/..%3b/admin",
                          "/api;/x",
                          "/api/%3B",
                          "/api/%253b",
                          "/api/%2f",
                          "/api/%2F",
                          "/api/%252f",
                          "/api/%5c",
                          "/api/%5C",
                          "/api/\\",
                          "/api//x",
                          "//api",
                          "/api/%2f%2fx",
                          "/api/.",
                          "/api/..",
                          "/api/./x",
                          "/api/%2e",
                          "/api/%2E%2E",
                          "/api/%252e%252e",
                          "/api/%25252e",
                          "/api/.%2e",
                          "/api/...",
                          "/api/.. ",
                          "/api/%2e%2e%20",
                          "/api/%00",
                          "/api/%0a",
                          "/api/%7f",
                          "/api/%250a",
                          "/api/a b",
                          "/api/#x",
                          "/api/%c0%ae",
                          "/api/%e0%80%ae",
                          "/api/%ff",
                          "/api/\xef\xbc\x8e\xef\xbc\x8e",
                          "/api/%ef%bc%8f",
                          "/api/%e2%80%a5",
                          "/api/%e2%84%80",
                          "/api/%",
                          "/api/%4",
                          "/api/%g0",
                          "/api/%%32%65"}) {
    const auto check = http::check_rpc_path(bad, prefixes);
    EXPECT_EQ(check.verdict, http::PathVerdict::kMalformed) << bad << ": " << check.why;
    EXPECT_FALSE(check.why.empty()) << bad;
  }
  // Well formed but outside the prefixes (compared as written, not decoded).
  for (const char* outside : {"/admin", "/apiadmin", "/api-x", "/files", "/%61pi/x", "/API/x"}) {
    EXPECT_EQ(http::check_rpc_path(outside, prefixes).verdict, http::PathVerdict::kOutside)
        << outside;
  }
  // Deep encodings end: more than kMaxDecodings levels is refused, not decoded forever.
  std::string deep = "/api/%2e";
  for (int i = 0; i < 10; ++i) deep.replace(deep.find('%') + 1, 0, "25");
  EXPECT_EQ(http::check_rpc_path(deep, prefixes).verdict, http::PathVerdict::kMalformed);
}

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
  for (const char* name : {"X-HTTP-Method-Override",
                           "x_http_method_override",
                           "X-HTTP-Method",
                           "X-Method-Override",
                           "X-Original-URL",
                           "X-Original-URI",
                           "X_Rewrite_Url",
                           "X-Real-IP",
                           "x_real_ip",
                           "True-Client-IP",
                           "X-Client-IP",
                           "X-Forwarded-Host",
                           "X-Forwarded-Proto",
                           "X_Forwarded_Port",
                           "X-Forwarded-Prefix",
                           "Forwarded",
                           "X-Cluster-Client-IP",
                           "CF-Connecting-IP",
                           "Fastly-Client-IP",
                           "X-Remote-User",
                           "Remote_User",
                           "X-Envoy-Internal",
                           "X-Amzn-Oidc-Data",
                           "X-Goog-Authenticated-User-Email",
                           "X-MS-Client-Principal-Name",
                           "X-Auth-Request-Email",
                           "X-Forwarded-User"}) {
    EXPECT_EQ(http::classify_header(name), http::HeaderClass::kTrusted) << name;
  }
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
