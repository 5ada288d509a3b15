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
  ASSERT_TRUE(tokens.verify(token, kNow));
  EXPECT_EQ(tokens.verify(token, kNow)->connection, 42u);
  EXPECT_EQ(tokens.verify(token, kNow)->instance, "host:1");
  EXPECT_TRUE(tokens.verify(token, kNow)->mine);
  EXPECT_TRUE(tokens.verify(token, kNow + 59min));
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
  EXPECT_FALSE(tokens.verify("v1.aG9zdDox.42." + std::to_string(1'800'003'600) + ".", kNow));
  EXPECT_FALSE(tokens.verify(std::string(1000, 'A'), kNow));
}

TEST(FallbackSessionToken, InstancesSharingTheSecretVerifyEachOthersAndKnowTheOwner) {
  const SessionTokens a("node-a", "a-shared-secret-of-at-least-32-bytes");
  const SessionTokens b("node-b", "a-shared-secret-of-at-least-32-bytes");
  const SessionTokens c("node-a", "another-secret-of-at-least-32-bytes!");
  const std::string token = a.issue(7, kNow + 1h);
  const auto at_b = b.verify(token, kNow);
  ASSERT_TRUE(at_b);
  EXPECT_EQ(at_b->instance, "node-a");
  EXPECT_EQ(at_b->connection, 7u);
  EXPECT_FALSE(at_b->mine);
  EXPECT_FALSE(c.verify(token, kNow));  // another key
  // The instance is under the mac: naming another owner breaks it.
  std::string moved = token;
  moved.replace(3, moved.find('.', 3) - 3, "bm9kZS1i");  // base64url("node-b")
  EXPECT_FALSE(b.verify(moved, kNow));
  // Without a secret each process has a random key of its own.
  const SessionTokens r1("host:1", ""), r2("host:1", "");
  EXPECT_TRUE(r1.verify(r1.issue(7, kNow + 1h), kNow));
  EXPECT_FALSE(r2.verify(r1.issue(7, kNow + 1h), kNow));
}

}  // namespace
}  // namespace wsbridge::fallback
