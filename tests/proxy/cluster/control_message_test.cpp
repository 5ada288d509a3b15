// Sealed control messages between instances (proxy/src/cluster/control_message.cpp): genuine
// ones open once; a wrong secret, another topic, an edited body, a replay or a stale time do not.
#include "cluster/control_message.hpp"

#include <gtest/gtest.h>
#include <thread>

#include "support/hmac.hpp"

namespace wsbridge::cluster {
namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef";

TEST(ControlSealTest, AGenuineMessageOpensOnceOnItsTopic) {
  ControlSeal a(kSecret, "node-a");
  ControlSeal b(kSecret, "node-b");
  const std::string sealed = a.seal("$wsbridge/v1/all/push", {{"request", {{"user", "u"}}}});
  std::string why;
  auto opened = b.open("$wsbridge/v1/all/push", sealed, &why);
  ASSERT_TRUE(opened) << why;
  EXPECT_EQ((*opened)["from"], "node-a");
  EXPECT_EQ((*opened)["request"]["user"], "u");
  EXPECT_FALSE(b.open("$wsbridge/v1/all/push", sealed, &why));
  EXPECT_EQ(why, "replayed");
  // A message may be read again where freshness does not apply (a retained presence).
  EXPECT_TRUE(b.open("$wsbridge/v1/all/push", sealed, nullptr, false));
}

TEST(ControlSealTest, AMessageSealedBeforeTheInstanceStartedIsRefused) {
  // A restarted instance forgot the nonces its predecessor saw: what was sealed before it started
  // is a replay (or too late for it) either way.
  ControlSeal a(kSecret, "node-a");
  const std::string sealed = a.seal("$wsbridge/v1/to/node-c/close", {{"id", 1}});
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ControlSeal restarted(kSecret, "node-c");
  std::string why;
  EXPECT_FALSE(restarted.open("$wsbridge/v1/to/node-c/close", sealed, &why));
  EXPECT_EQ(why, "sealed before this instance started");
}

TEST(ControlSealTest, ForgeriesAreRefused) {
  ControlSeal a(kSecret, "node-a");
  ControlSeal other("another-secret-another-secret-xx", "mallory");
  ControlSeal b(kSecret, "node-b");
  const std::string topic = "$wsbridge/v1/to/node-b/close";
  std::string why;
  EXPECT_FALSE(b.open(topic, other.seal(topic, {{"id", 1}}), &why));
  EXPECT_EQ(why, "bad signature");
  // Moved to another topic.
  EXPECT_FALSE(b.open("$wsbridge/v1/to/node-c/close", a.seal(topic, {{"id", 1}}), &why));
  EXPECT_EQ(why, "bad signature");
  // An edited body.
  std::string sealed = a.seal(topic, {{"id", 1}});
  sealed.replace(sealed.find("\"id\":1"), 6, "\"id\":2");
  EXPECT_FALSE(b.open(topic, sealed, &why));
  EXPECT_EQ(why, "bad signature");
  for (const std::string& bad :
       std::vector<std::string>{"", ".", "x.{}", "no dot at all", sealed.substr(0, 10)}) {
    EXPECT_FALSE(b.open(topic, bad)) << bad;
  }
}

TEST(ControlSealTest, StaleMessagesAreRefusedEvenWithAValidSeal) {
  // Sealed by hand with a time two minutes ago: only the holder of the secret could, and it
  // still does not open.
  ControlSeal b(kSecret, "node-b");
  const std::string topic = "$wsbridge/v1/all/push";
  const auto old =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          (std::chrono::system_clock::now() - std::chrono::minutes(2)).time_since_epoch())
          .count();
  const std::string json =
      nlohmann::json{{"from", "node-a"}, {"ts", old}, {"nonce", "n1"}, {"request", 1}}.dump();
  const std::string sealed = hmac_sha256_base64url(kSecret, topic + "\n" + json) + "." + json;
  std::string why;
  EXPECT_FALSE(b.open(topic, sealed, &why));
  EXPECT_EQ(why, "stale or from the future");
  EXPECT_TRUE(b.open(topic, sealed, nullptr, false));  // the seal itself is right
}

}  // namespace
}  // namespace wsbridge::cluster
