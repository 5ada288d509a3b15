#include "fallback/session_token.hpp"

#include <gtest/gtest.h>

namespace wsbridge::fallback {
namespace {

using std::chrono::system_clock;
using namespace std::chrono_literals;

const auto kNow = system_clock::time_point(std::chrono::seconds(1'800'000'000));
constexpr TokenBinding kBound{"/mqtt", ""};

TEST(FallbackSessionToken, VerifiesWhatItIssuedUntilItExpires) {
  const SessionTokens tokens("host:1", "a-shared-secret-of-at-least-32-bytes");
  const std::string token = tokens.issue(42, kNow + 1h, kBound);
  ASSERT_TRUE(tokens.verify(token, kNow, kBound));
  EXPECT_EQ(tokens.verify(token, kNow, kBound)->connection, 42u);
  EXPECT_EQ(tokens.verify(token, kNow, kBound)->instance, "host:1");
  EXPECT_TRUE(tokens.verify(token, kNow, kBound)->mine);
  EXPECT_TRUE(tokens.verify(token, kNow + 59min, kBound));
  EXPECT_FALSE(tokens.verify(token, kNow + 1h, kBound));
}

TEST(FallbackSessionToken, RefusesEveryAlteration) {
  const SessionTokens tokens("host:1", "a-shared-secret-of-at-least-32-bytes");
  const std::string token = tokens.issue(42, kNow + 1h, kBound);
  for (std::size_t i = 0; i < token.size(); ++i) {
    std::string altered = token;
    altered[i] = altered[i] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(tokens.verify(altered, kNow, kBound)) << altered;
  }
  EXPECT_FALSE(tokens.verify(token + "A", kNow, kBound));
  EXPECT_FALSE(tokens.verify(token.substr(0, token.size() - 1), kNow, kBound));
  EXPECT_FALSE(tokens.verify("", kNow, kBound));
  EXPECT_FALSE(tokens.verify("v3....", kNow, kBound));
  EXPECT_FALSE(tokens.verify(
      "v3.aG9zdDox.0123456789abcdef.42." + std::to_string(1'800'003'600) + ".", kNow, kBound));
  EXPECT_FALSE(tokens.verify(std::string(1000, 'A'), kNow, kBound));
}

TEST(FallbackSessionToken, InstancesSharingTheSecretVerifyEachOthersAndKnowTheOwner) {
  const SessionTokens a("node-a", "a-shared-secret-of-at-least-32-bytes");
  const SessionTokens b("node-b", "a-shared-secret-of-at-least-32-bytes");
  const SessionTokens c("node-a", "another-secret-of-at-least-32-bytes!");
  const std::string token = a.issue(7, kNow + 1h, kBound);
  const auto at_b = b.verify(token, kNow, kBound);
  ASSERT_TRUE(at_b);
  EXPECT_EQ(at_b->instance, "node-a");
  EXPECT_EQ(at_b->connection, 7u);
  EXPECT_FALSE(at_b->mine);
  EXPECT_FALSE(c.verify(token, kNow, kBound));  // another key
  // The instance is under the mac: naming another owner breaks it.
  std::string moved = token;
  moved.replace(3, moved.find('.', 3) - 3, "bm9kZS1i");  // base64url("node-b")
  EXPECT_FALSE(b.verify(moved, kNow, kBound));
  // Without a secret each process has a random key of its own.
  const SessionTokens r1("host:1", ""), r2("host:1", "");
  EXPECT_TRUE(r1.verify(r1.issue(7, kNow + 1h, kBound), kNow, kBound));
  EXPECT_FALSE(r2.verify(r1.issue(7, kNow + 1h, kBound), kNow, kBound));
}

// A token opened on one route with one client certificate verifies for those alone: not at
// another route's URL, not without the certificate, not with another one.
TEST(FallbackSessionToken, IsBoundToItsRouteAndClientCertificate) {
  const SessionTokens tokens("host:1", "a-shared-secret-of-at-least-32-bytes");
  const std::string token = tokens.issue(42, kNow + 1h, {"/devices", "ab12"});
  EXPECT_TRUE(tokens.verify(token, kNow, {"/devices", "ab12"}));
  EXPECT_FALSE(tokens.verify(token, kNow, {"/devices", ""}));
  EXPECT_FALSE(tokens.verify(token, kNow, {"/devices", "ab13"}));
  EXPECT_FALSE(tokens.verify(token, kNow, {"/echo", "ab12"}));
  const std::string plain = tokens.issue(43, kNow + 1h, {"/tiny", ""});
  EXPECT_TRUE(tokens.verify(plain, kNow, {"/tiny", ""}));
  EXPECT_FALSE(tokens.verify(plain, kNow, {"/echo", ""}));
  EXPECT_FALSE(tokens.verify(plain, kNow, {"/tiny", "ab12"}));
}

// One session, one token: "042" or a base64 instance with other unused bits is not another.
TEST(FallbackSessionToken, OnlyTheIssuedSpellingVerifies) {
  const SessionTokens tokens("host:1", "a-shared-secret-of-at-least-32-bytes");
  const std::string token = tokens.issue(42, kNow + 1h, kBound);
  std::string padded = token;
  padded.replace(padded.find(".42."), 4, ".042.");
  EXPECT_FALSE(tokens.verify(padded, kNow, kBound));
  std::string plus = token;
  plus.replace(plus.find(".42."), 4, ".+42.");
  EXPECT_FALSE(tokens.verify(plus, kNow, kBound));
  // base64url("h") is "aA": the 'A' carries 4 unused bits, which "aB" sets.
  const SessionTokens short_name("h", "a-shared-secret-of-at-least-32-bytes");
  const std::string named_h = short_name.issue(42, kNow + 1h, kBound);
  ASSERT_TRUE(named_h.starts_with("v3.aA."));
  EXPECT_TRUE(short_name.verify(named_h, kNow, kBound));
  EXPECT_FALSE(short_name.verify("v3.aB." + named_h.substr(6), kNow, kBound));
  // The run's hex in upper case is another spelling too.
  const SessionTokens lettered("host:1", "a-shared-secret-of-at-least-32-bytes",
                               "abcdef0123456789");
  const std::string lower_run = lettered.issue(42, kNow + 1h, kBound);
  ASSERT_TRUE(lettered.verify(lower_run, kNow, kBound));
  std::string upper = lower_run;
  upper.replace(upper.find("abcdef"), 6, "ABCDEF");
  EXPECT_FALSE(lettered.verify(upper, kNow, kBound));
}

// Connection ids start at 1 again when a process restarts: the instance's tokens from its run
// before name numbers that are other sessions now, and are refused. Its peers, which cannot know
// its run, still take them as the instance's (the owner refuses them when they are forwarded).
TEST(FallbackSessionToken, ATokenOfTheInstancesPreviousRunIsRefused) {
  const SessionTokens before("node-a", "a-shared-secret-of-at-least-32-bytes", "0000000000000001");
  const SessionTokens after("node-a", "a-shared-secret-of-at-least-32-bytes", "0000000000000002");
  const SessionTokens peer("node-b", "a-shared-secret-of-at-least-32-bytes");
  const std::string old_token = before.issue(1, kNow + 24h, kBound);
  EXPECT_TRUE(before.verify(old_token, kNow, kBound));
  EXPECT_FALSE(after.verify(old_token, kNow, kBound));
  ASSERT_TRUE(peer.verify(old_token, kNow, kBound));
  EXPECT_FALSE(peer.verify(old_token, kNow, kBound)->mine);
  EXPECT_TRUE(after.verify(after.issue(1, kNow + 24h, kBound), kNow, kBound));
  // Each process draws its own run.
  const SessionTokens r1("node-a", "a-shared-secret-of-at-least-32-bytes");
  const SessionTokens r2("node-a", "a-shared-secret-of-at-least-32-bytes");
  EXPECT_FALSE(r2.verify(r1.issue(1, kNow + 1h, kBound), kNow, kBound));
}

// A request forwarded to the owner carries the forwarder's word for the client's certificate.
TEST(FallbackSessionToken, VouchesForACertificateOnlyWithTheKey) {
  const SessionTokens a("node-a", "a-shared-secret-of-at-least-32-bytes");
  const SessionTokens b("node-b", "a-shared-secret-of-at-least-32-bytes");
  const SessionTokens c("node-c", "another-secret-of-at-least-32-bytes!");
  const std::string token = b.issue(7, kNow + 1h, {"/devices", "ab12"});
  const std::string vouch = a.vouch(token, "ab12");
  EXPECT_EQ(b.vouched(token, vouch), "ab12");
  EXPECT_EQ(b.vouched(token, a.vouch(token, "")), "");
  EXPECT_FALSE(c.vouched(token, vouch));                     // another key
  EXPECT_FALSE(b.vouched(token + "x", vouch));               // for another token
  EXPECT_FALSE(b.vouched(token, "ab13" + vouch.substr(4)));  // another certificate
  EXPECT_FALSE(b.vouched(token, "ab12"));
  EXPECT_FALSE(b.vouched(token, ""));
}

}  // namespace
}  // namespace wsbridge::fallback
