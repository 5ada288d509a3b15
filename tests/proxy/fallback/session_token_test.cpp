#include "fallback/session_token.hpp"

#include <gtest/gtest.h>

namespace wsbridge::fallback {
namespace {

using std::chrono::system_clock;
using namespace std::chrono_literals;

const auto kNow = system_clock::time_point(std::chrono::seconds(1'800'000'000));

TEST(FallbackSessionToken, VerifiesWhatItIssuedUntilItExpires) {
  const SessionTokens tokens("host:1", "a-shared-secret-of-at-least-32-bytes");
  const std::string token = tokens.issue(42, kNow + 1h);
  EXPECT_EQ(tokens.verify(token, kNow), 42u);
  EXPECT_EQ(tokens.verify(token, kNow + 59min), 42u);
  EXPECT_FALSE(tokens.verify(token, kNow + 1h));
}

TEST(FallbackSessionToken, RefusesEveryAlteration) {
  const SessionTokens tokens("host:1", "a-shared-secret-of-at-least-32-bytes");
  const std::string token = tokens.issue(42, kNow + 1h);
  for (std::size_t i = 0; i < token.size(); ++i) {
    std::string altered = token;
    altered[i] = altered[i] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(tokens.verify(altered, kNow)) << altered;
  }
  EXPECT_FALSE(tokens.verify(token + "A", kNow));
  EXPECT_FALSE(tokens.verify(token.substr(0, token.size() - 1), kNow));
  EXPECT_FALSE(tokens.verify("", kNow));
  EXPECT_FALSE(tokens.verify("v1...", kNow));
  EXPECT_FALSE(tokens.verify("v1.42." + std::to_string(1'800'003'600) + ".", kNow));
  EXPECT_FALSE(tokens.verify(std::string(1000, 'A'), kNow));
}

TEST(FallbackSessionToken, AnotherInstanceOrKeyDoesNotVerify) {
  const SessionTokens a("host:1", "a-shared-secret-of-at-least-32-bytes");
  const SessionTokens b("host:2", "a-shared-secret-of-at-least-32-bytes");
  const SessionTokens c("host:1", "another-secret-of-at-least-32-bytes!");
  const SessionTokens same("host:1", "a-shared-secret-of-at-least-32-bytes");
  const std::string token = a.issue(7, kNow + 1h);
  EXPECT_FALSE(b.verify(token, kNow));
  EXPECT_FALSE(c.verify(token, kNow));
  EXPECT_EQ(same.verify(token, kNow), 7u);
  // Without a secret each process has a random key of its own.
  const SessionTokens r1("host:1", ""), r2("host:1", "");
  EXPECT_EQ(r1.verify(r1.issue(7, kNow + 1h), kNow), 7u);
  EXPECT_FALSE(r2.verify(r1.issue(7, kNow + 1h), kNow));
}

}  // namespace
}  // namespace wsbridge::fallback
