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

// IIS drops a segment's trailing dots and spaces: "/admin./x" is its "/admin/x".
TEST(RequestPathTest, ASegmentsTrailingDotsAndSpacesAreLeftOut) {
  EXPECT_EQ(matching_path("/admin./x"), "/admin/x");
  EXPECT_EQ(matching_path("/admin%20/x"), "/admin/x");
  EXPECT_EQ(matching_path("/admin.%20.%2e/x"), "/admin/x");
  EXPECT_EQ(matching_path("/admin.."), "/admin");
  EXPECT_EQ(matching_path("/admin.;x/y"), "/admin/y");
  EXPECT_EQ(matching_path("/wiki/Washington,_D.C."), "/wiki/Washington,_D.C");
  EXPECT_EQ(matching_path("/a.b/c"), "/a.b/c");  // not trailing: kept
  EXPECT_EQ(matching_path("/a/.x"), "/a/.x");
  // A segment of nothing else keeps them, to be refused as a dot segment.
  EXPECT_EQ(matching_path("/a/./b"), "/a/./b");
  EXPECT_EQ(matching_path("/a/.."), "/a/..");
  EXPECT_EQ(matching_path("/a/%20/b"), "/a/ /b");
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
  // What the matching path leaves out of the prefix's last segment goes with the prefix.
  EXPECT_EQ(raw_prefix_end("/app;x=1/y", "/app"), 8u);
  EXPECT_EQ(raw_prefix_end("/app;x=1", "/app"), 8u);
  EXPECT_EQ(raw_prefix_end("/app./x", "/app"), 5u);
  EXPECT_EQ(raw_prefix_end("/app%20.", "/app"), 8u);
  EXPECT_EQ(raw_prefix_end("/app.x", "/app"), npos);
}

TEST(RequestPathTest, PathsABackendWouldNormalizeElsewhereAreRefused) {
  for (const char* path :
       {"/public/../admin", "/a/./b", "/a/..", "/a/.", "/..", "/a/%2e%2e/b", "/a/%2E./b", "/a/.%2e",
        "/a\\..\\b", "/a%5c..%5cb", "/a%5Cb", "/a%00b", "/public%2F..%2Fadmin", "/public/..;/admin",
        "/public/.;x/admin", "/public/%2e%2e;jsessionid=1/admin", "//..//admin",
        "/%c0%ae%c0%ae/admin", "/%C1%9C",
        // Windows reads these as dot segments, or "/%20/admin" as "//admin".
        "/a/...", "/a/. .", "/a/..%20/b", "/%20/admin", "/a/%20%20/b",
        // 3- and 4-byte overlong forms of '.' and '/'.
        "/%E0%80%AE%E0%80%AE/admin", "/a%E0%80%AFadmin", "/%F0%80%80%AE",
        // Fullwidth and small full stops, solidus, reverse solidus: '.', '/', '\' once
        // normalised.
        "/public/%EF%BC%8E%EF%BC%8E/admin", "/public%EF%BC%8Fadmin",
        "/a/\xEF\xB9\x92\xEF\xB9\x92/b", "/a%EF%BC%BCb",
        // Compatibility forms of letters and spaces: fullwidth 'a', the long s, the Kelvin sign,
        // a Roman numeral, no-break and ideographic spaces, a ligature, a mathematical letter.
        "/%EF%BD%81dmin/x", "/admin%C5%BF/x", "/%E2%84%AAey", "/%E2%85%A0/x", "/admin%C2%A0/x",
        "/admin%E3%80%80/x", "/%EF%AC%81le", "/%F0%9D%90%9Admin",
        // Control characters (Java's trim() drops them), a leading space, NTFS stream names.
        "/admin%09/x", "/admin%0B/x", "/admin%0C/x", "/%09admin/x", "/%20admin/x",
        "/admin::$DATA/x", "/admin:$i30:$INDEX_ALLOCATION/x"}) {
    EXPECT_TRUE(unsafe_path(path).has_value()) << path;
  }
  for (const char* path : {"/",
                           "/a/b",
                           "/a/..b",
                           "/a/b..",
                           "/.well-known/x",
                           "/a%2fb",
                           "/v1.2/x",
                           "/a/%2e%2ex",
                           "/a;b/c",
                           "/a/..x;y",
                           "//a//b",
                           "/wiki/Washington,_D.C.",
                           "/a%20b/c",
                           "/caf%C3%A9",
                           "/%E0%A4%85",
                           "/%F0%9F%98%80",  // UTF-8: Devanagari, an emoji
                           "/caf%E9",
                           "/%E0t%E9",  // Latin-1, as legacy applications send it
                           "/%E2%82%AC",
                           "/%E3%81%82",
                           "/a:b/c:d"}) {  // the euro sign, a hiragana, colons
    EXPECT_FALSE(unsafe_path(path).has_value()) << path;
  }
}

}  // namespace
}  // namespace wsbridge::reverse_proxy
