// The frame-header follower behind the unmasked-frame check.
#include <gtest/gtest.h>

#include "mask_guard.hpp"
#include "support/ws_test_client.hpp"

namespace wsbridge {
namespace {

using testing::encode_frame;
using testing::Opcode;

std::size_t feed(FrameMaskScanner& s, const std::string& bytes) {
  return s.feed(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

TEST(FrameMaskScannerTest, AcceptsMaskedFramesOfEveryLengthForm) {
  FrameMaskScanner s;
  std::string stream;
  for (std::size_t n : {0u, 5u, 125u, 126u, 65535u, 65536u, 300000u}) {
    stream += encode_frame(Opcode::kBinary, std::string(n, 'x'), true, testing::random_mask_key());
  }
  EXPECT_EQ(feed(s, stream), stream.size());
  EXPECT_FALSE(s.violated());
}

TEST(FrameMaskScannerTest, FollowsFramesSplitAtEveryByte) {
  const std::string stream =
      encode_frame(Opcode::kText, std::string(300, 'a'), false, testing::random_mask_key()) +
      encode_frame(Opcode::kContinuation, "b", true, testing::random_mask_key()) +
      encode_frame(Opcode::kPing, "p", true, testing::random_mask_key());
  FrameMaskScanner s;
  for (char c : stream) EXPECT_EQ(feed(s, std::string(1, c)), 1u);
  EXPECT_FALSE(s.violated());
}

TEST(FrameMaskScannerTest, StopsAtTheFirstUnmaskedFrame) {
  const std::string good = encode_frame(Opcode::kText, "ok", true, testing::random_mask_key());
  const std::string bad = encode_frame(Opcode::kText, "bad", true, std::nullopt);
  FrameMaskScanner s;
  EXPECT_EQ(feed(s, good + bad + good), good.size());
  EXPECT_TRUE(s.violated());
  EXPECT_EQ(feed(s, good), 0u);
}

TEST(FrameMaskScannerTest, UnmaskedHeaderSplitAcrossReadsGivesNothingMore) {
  const std::string bad = encode_frame(Opcode::kText, "bad", true, std::nullopt);
  FrameMaskScanner s;
  EXPECT_EQ(feed(s, bad.substr(0, 1)), 1u);  // the first header byte says nothing about masking
  EXPECT_EQ(feed(s, bad.substr(1)), 0u);
  EXPECT_TRUE(s.violated());
}

TEST(MaskGuardTest, UnwatchedDescriptorsPassThrough) {
  char buf[4] = {'a', 'b', 'c', 'd'};
  EXPECT_EQ(mask_guard::after_recv(12345, buf, 4), 4);
  EXPECT_FALSE(mask_guard::blocked(12345));
}

struct RecordingSink final : UnmaskedFrameSink {
  virtual ~RecordingSink() = default;
  void on_unmasked_frame(int fd) override { fds.push_back(fd); }
  std::vector<int> fds;
};

TEST(MaskGuardTest, WatchesTheBytesBehindTheRequestHeadAndThenTheStream) {
  RecordingSink sink;
  const int fd = 4000;  // any number: the guard only tracks bytes it is shown
  mask_guard::watch_http(fd, &sink);
  std::string request = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string early = encode_frame(Opcode::kText, "early", true, testing::random_mask_key());
  std::string chunk = request + early.substr(0, 3);
  EXPECT_EQ(mask_guard::after_recv(fd, chunk.data(), static_cast<long>(chunk.size())),
            static_cast<long>(chunk.size()));
  mask_guard::start_websocket(fd);
  std::string rest = early.substr(3) + encode_frame(Opcode::kText, "bad", true, std::nullopt);
  EXPECT_EQ(mask_guard::after_recv(fd, rest.data(), static_cast<long>(rest.size())),
            static_cast<long>(early.size() - 3));
  EXPECT_TRUE(mask_guard::blocked(fd));
  EXPECT_EQ(sink.fds, std::vector<int>{fd});
  mask_guard::forget(fd);
  EXPECT_FALSE(mask_guard::blocked(fd));
}

}  // namespace
}  // namespace wsbridge
