// Which rpc paths a client may reach (plugins/http/path_rules.cpp), spelling by spelling.
// Regression test for #13.4; the end-to-end one is in
// tests/regression/http_regression_test.cpp.
#include <gtest/gtest.h>

#include <string>
#include <vector>

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
                          "/%ef%bd%81pi/x",  // fullwidth 'a': "/api/x" once normalised
                          "/api/x%c2%a0",    // a no-break space
                          "/api/%e2%85%a0",
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

}  // namespace
}  // namespace wsbridge
