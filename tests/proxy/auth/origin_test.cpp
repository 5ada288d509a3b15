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

}  // namespace
}  // namespace wsbridge::auth
