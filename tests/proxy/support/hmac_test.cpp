// HMAC-SHA256 (proxy/src/support/hmac.cpp): the one-shot function and the keyed HmacSha256 give
// RFC 4231's MACs, agree with each other on every message, truncate as asked, and the keyed one
// gives the same answers from several threads at once (its prepared context is shared).
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "support/hmac.hpp"
#include "wsbridge/base64.hpp"

namespace wsbridge {
namespace {

std::string hex_to_bytes(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string expected(std::string_view hex_mac, std::size_t bytes = kSha256Bytes) {
  return base64url_encode(hex_to_bytes(hex_mac).substr(0, bytes));
}

// RFC 4231, test cases 2 (a short key) and 6 (a key longer than SHA-256's block, hashed first).
constexpr std::string_view kCase2Mac =
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
constexpr std::string_view kCase6Mac =
    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54";
const std::string kCase6Key(131, '\xaa');
constexpr std::string_view kCase6Data = "Test Using Larger Than Block-Size Key - Hash Key First";

TEST(HmacSha256Test, OneShotGivesTheRfc4231Macs) {
  EXPECT_EQ(hmac_sha256_base64url("Jefe", "what do ya want for nothing?"), expected(kCase2Mac));
  EXPECT_EQ(hmac_sha256_base64url(kCase6Key, kCase6Data), expected(kCase6Mac));
}

TEST(HmacSha256Test, KeyedGivesTheRfc4231MacsAgainAndAgain) {
  const HmacSha256 jefe("Jefe");
  const HmacSha256 long_key(kCase6Key);
  for (int i = 0; i < 3; ++i) {  // the prepared key is not used up by a message
    EXPECT_EQ(jefe.base64url("what do ya want for nothing?"), expected(kCase2Mac));
    EXPECT_EQ(long_key.base64url(kCase6Data), expected(kCase6Mac));
  }
}

TEST(HmacSha256Test, KeyedAgreesWithOneShotAndTruncatesAsAsked) {
  const std::string key = "a-shared-secret-of-at-least-32-bytes";
  const HmacSha256 keyed(key);
  const std::vector<std::string> messages = {"", "a", "node-a\n42\n1790000000",
                                             std::string(1000, 'x')};
  for (const std::string& message : messages) {
    EXPECT_EQ(keyed.base64url(message), hmac_sha256_base64url(key, message)) << message;
    EXPECT_EQ(keyed.base64url(message, 16), hmac_sha256_base64url(key, message, 16)) << message;
  }
  EXPECT_EQ(keyed.base64url("m", 16).size(), 22u);  // 16 bytes in base64url, unpadded
  EXPECT_NE(keyed.base64url("m"), HmacSha256("another key").base64url("m"));
}

TEST(HmacSha256Test, OneKeyedInstanceServesSeveralThreads) {
  const HmacSha256 keyed("Jefe");
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (std::size_t t = 0; t < wrong.size(); ++t) {
    threads.emplace_back([&keyed, &wrong, t] {
      for (int i = 0; i < 2000; ++i) {
        if (keyed.base64url("what do ya want for nothing?") != expected(kCase2Mac)) ++wrong[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const int n : wrong) EXPECT_EQ(n, 0);
}

}  // namespace
}  // namespace wsbridge
