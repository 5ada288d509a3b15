// Origin allowlists (proxy/src/auth/origin.cpp): which patterns are valid, what they match.
#include <gtest/gtest.h>

#include "auth/origin.hpp"

namespace wsbridge::auth {
namespace {

TEST(OriginTest, PatternsAndMatching) {
  EXPECT_FALSE(origin_pattern_problem("https://app.example.com"));
  EXPECT_FALSE(origin_pattern_problem("http://localhost:8080"));
  EXPECT_FALSE(origin_pattern_problem("https://*.example.com"));
  EXPECT_TRUE(origin_pattern_problem("app.example.com"));
  EXPECT_TRUE(origin_pattern_problem("ftp://example.com"));
  EXPECT_TRUE(origin_pattern_problem("https://example.com/path"));
  EXPECT_TRUE(origin_pattern_problem("https://ex*ample.com"));
  OriginPolicy p{{"https://*.example.com", "http://localhost:8080"}, true};
  EXPECT_TRUE(p.allows(std::string("https://a.example.com")));
  EXPECT_TRUE(p.allows(std::string("https://a.b.example.com")));
  EXPECT_FALSE(p.allows(std::string("https://example.com")));
  EXPECT_FALSE(p.allows(std::string("https://aexample.com")));
  EXPECT_FALSE(p.allows(std::string("https://a.example.com:8443")));
  EXPECT_FALSE(p.allows(std::string("https://a.example.com.evil.net")));
  EXPECT_TRUE(p.allows(std::string("http://localhost:8080")));
  EXPECT_FALSE(p.allows(std::string("http://localhost:8081")));
  EXPECT_FALSE(p.allows(std::string("null")));
  EXPECT_TRUE(p.allows(std::nullopt));
}

// Same origin as the request's Host: host and port, the scheme's default port as none.
TEST(OriginTest, SameOriginAsHost) {
  EXPECT_TRUE(same_origin_as_host("https://bridge.example.com", "bridge.example.com"));
  EXPECT_TRUE(same_origin_as_host("https://Bridge.Example.com", "bridge.EXAMPLE.com"));
  EXPECT_TRUE(same_origin_as_host("https://bridge.example.com", "bridge.example.com:443"));
  EXPECT_TRUE(same_origin_as_host("https://bridge.example.com:443", "bridge.example.com"));
  EXPECT_TRUE(same_origin_as_host("http://127.0.0.1:8080", "127.0.0.1:8080"));
  EXPECT_TRUE(same_origin_as_host("http://[::1]:8080", "[::1]:8080"));
  // Behind a balancer that ends TLS: the page is https, the Host is the same.
  EXPECT_TRUE(same_origin_as_host("https://bridge.example.com:8443", "bridge.example.com:8443"));
  EXPECT_FALSE(same_origin_as_host("https://evil.example.com", "bridge.example.com"));
  EXPECT_FALSE(same_origin_as_host("http://127.0.0.1:8081", "127.0.0.1:8080"));
  EXPECT_FALSE(same_origin_as_host("http://127.0.0.1", "127.0.0.1:8080"));
  EXPECT_FALSE(same_origin_as_host("https://bridge.example.com", "bridge.example.com:80"));
  EXPECT_FALSE(same_origin_as_host("https://bridge.example.com.evil.net", "bridge.example.com"));
  EXPECT_FALSE(same_origin_as_host("null", "null"));
  EXPECT_FALSE(same_origin_as_host("https://", ""));
  EXPECT_FALSE(same_origin_as_host("https://a b", "a b"));
  EXPECT_FALSE(same_origin_as_host("https://bridge.example.com/", "bridge.example.com/"));
  // Over TLS the page must be https.
  EXPECT_TRUE(same_origin_as_host("https://bridge.example.com", "bridge.example.com", true));
  EXPECT_FALSE(same_origin_as_host("http://bridge.example.com", "bridge.example.com", true));
  EXPECT_FALSE(same_origin_as_host("http://bridge.example.com:443", "bridge.example.com", true));
}

}  // namespace
}  // namespace wsbridge::auth
