// The path a relayed request is matched on, and the paths the proxy refuses
// (proxy/src/reverse_proxy/request_path.cpp).
#include "reverse_proxy/request_path.hpp"

#include <gtest/gtest.h>

namespace wsbridge::reverse_proxy {
namespace {

TEST(RequestPathTest, TheMatchingPathIsDecodedWithItsSlashesMerged) {
  EXPECT_EQ(matching_path("/admin/x"), "/admin/x");
  EXPECT_EQ(matching_path("/%61dmin/x"), "/admin/x");
  EXPECT_EQ(matching_path("//admin///x"), "/admin/x");
  EXPECT_EQ(matching_path("/admin%2Fx"), "/admin/x");
  EXPECT_EQ(matching_path("/admin%2f%2F/x"), "/admin/x");
  EXPECT_EQ(matching_path("/caf%C3%A9"), "/caf\xc3\xa9");
  EXPECT_EQ(matching_path("/a%2"), "/a%2");  // not an escape: kept (the parser refuses it first)
  EXPECT_EQ(matching_path("/a+b"), "/a+b");  // '+' is a space only in a query
  EXPECT_EQ(matching_path(""), "");
  EXPECT_EQ(matching_path("/admin;jsessionid=1/x"), "/admin/x");  // parameters left out
  EXPECT_EQ(matching_path("/a;b%2Fc/d"), "/a/d");  // parameters end at a literal '/' only
  EXPECT_EQ(matching_path("/;%2Fa/admin/x"), "/admin/x");
  EXPECT_EQ(matching_path("/a%3Bb/c"), "/a;b/c");  // an encoded ';' is a character
}

TEST(RequestPathTest, ThePrefixEndsWhereItsBytesWereSent) {
  constexpr auto npos = std::string_view::npos;
  EXPECT_EQ(raw_prefix_end("/app", "/app"), 4u);
  EXPECT_EQ(raw_prefix_end("/app/x", "/app"), 4u);
  EXPECT_EQ(raw_prefix_end("/%61pp/x", "/app"), 6u);
  EXPECT_EQ(raw_prefix_end("//app//x", "/app"), 5u);
  EXPECT_EQ(raw_prefix_end("/app%2fx", "/app"), 4u);
  EXPECT_EQ(raw_prefix_end("/a/b/c", "/a/b"), 4u);
  EXPECT_EQ(raw_prefix_end("/a%2Fb/c", "/a/b"), 6u);
  EXPECT_EQ(raw_prefix_end("/apps", "/app"), npos);  // a prefix ends at a segment boundary
  EXPECT_EQ(raw_prefix_end("/ap", "/app"), npos);
  EXPECT_EQ(raw_prefix_end("/other", "/app"), npos);
  EXPECT_EQ(raw_prefix_end("/APP/x", "/app"), npos);  // case-sensitive, as nginx's prefixes
  EXPECT_EQ(raw_prefix_end("", "/app"), npos);
  EXPECT_EQ(raw_prefix_end("/app;x=1/y", "/app"), 4u);  // its ;parameters stay with the rest
}

TEST(RequestPathTest, PathsABackendWouldNormalizeElsewhereAreRefused) {
  for (const char* path :
       {"/public/../admin", "/a/./b", "/a/..", "/a/.", "/..", "/a/%2e%2e/b", "/a/%2E./b", "/a/.%2e",
        "/a\\..\\b", "/a%5c..%5cb", "/a%5Cb", "/a%00b", "/public%2F..%2Fadmin", "/public/..;/admin",
        "/public/.;x/admin", "/public/%2e%2e;jsessionid=1/admin", "//..//admin",
        "/%c0%ae%c0%ae/admin", "/%C1%9C"}) {
    EXPECT_TRUE(unsafe_path(path).has_value()) << path;
  }
  for (const char* path : {"/", "/a/b", "/a/..b", "/a/b..", "/.well-known/x", "/a/...", "/a%2fb",
                           "/v1.2/x", "/a/%2e%2ex", "/a;b/c", "/a/..x;y", "//a//b"}) {
    EXPECT_FALSE(unsafe_path(path).has_value()) << path;
  }
}

}  // namespace
}  // namespace wsbridge::reverse_proxy
