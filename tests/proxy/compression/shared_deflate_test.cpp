// Shared permessage-deflate: one compressed variant per frame and parameter set, what goes on the
// wire, and inflating within a limit.
#include "compression/shared_deflate.hpp"

#include <gtest/gtest.h>

#include <random>
#include <thread>
#include <vector>

#include "support/ws_test_client.hpp"

namespace wsbridge {
namespace {

using shared_deflate::InflateStatus;
using shared_deflate::WireFormat;

std::string telemetry(std::size_t n) {
  std::string s;
  while (s.size() < n) s += R"({"sensor":"boiler-7","temp":21.5,"unit":"C","ok":true},)";
  s.resize(n);
  return s;
}

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// What a client does (the tests' own permessage-deflate, independent of the code under test): a
// fresh inflater with exactly this window, and a fresh deflater (level 6, 15-bit window).
std::string client_inflate(std::string_view compressed, int window_bits = 15) {
  return testing::Inflater(window_bits).decompress(compressed);
}
std::string client_deflate(std::string_view payload) {
  return testing::Deflater().compress(payload);
}

TEST(SharedDeflateTest, CompressedVariantInflatesToThePayloadForEveryWindow) {
  const Frame frame = Frame::text(telemetry(300000));
  for (int bits = 8; bits <= 15; ++bits) {  // (8: the 9-bit variant, within 256 bytes)
    const WireFormat format = shared_deflate::format_for(bits, 1, 128);
    const auto view = shared_deflate::wire_view(frame, format);
    ASSERT_TRUE(view.compressed) << bits;
    EXPECT_LT(view.payload.size(), frame.size() / 4);
    // A client that allows only this window (server_max_window_bits) can read it.
    EXPECT_EQ(client_inflate(view.payload, bits), frame.payload()) << bits;
  }
}

TEST(SharedDeflateTest, EachVariantIsBuiltOnceAndShared) {
  const Frame frame = Frame::binary(telemetry(4096));
  const WireFormat format = shared_deflate::format_for(15, 1, 128);
  const auto a = shared_deflate::wire_view(frame, format);
  const Frame copy = frame;  // another session's queue holds the same frame
  const auto b = shared_deflate::wire_view(copy, format);
  EXPECT_EQ(a.payload.data(), b.payload.data());  // the same bytes, not a second compression
  ASSERT_NE(frame.find_variant(format.key), nullptr);
  // Another level is another variant, beside the first.
  const WireFormat level9 = shared_deflate::format_for(15, 9, 128);
  EXPECT_NE(shared_deflate::wire_view(frame, level9).payload.data(), a.payload.data());
  EXPECT_EQ(shared_deflate::wire_view(frame, format).payload.data(), a.payload.data());
}

TEST(SharedDeflateTest, ThreadsRacingToBuildAVariantAllUseOne) {
  for (int round = 0; round < 20; ++round) {
    const Frame frame = Frame::text(telemetry(20000));
    const WireFormat format = shared_deflate::format_for(15, 1, 0);
    std::vector<const char*> seen(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back(
          [&, t] { seen[t] = shared_deflate::wire_view(frame, format).payload.data(); });
    }
    for (auto& t : threads) t.join();
    for (const char* p : seen) EXPECT_EQ(p, seen[0]);
  }
}

TEST(SharedDeflateTest, SmallIncompressibleAndUncompressedFramesGoAsTheyAre) {
  const WireFormat format = shared_deflate::format_for(15, 1, 128);
  const Frame small = Frame::text(telemetry(127));  // under the threshold
  auto v = shared_deflate::wire_view(small, format);
  EXPECT_FALSE(v.compressed);
  EXPECT_EQ(v.payload.data(), small.payload().data());
  EXPECT_EQ(small.find_variant(format.key), nullptr);        // not even tried
  const Frame noise = Frame::binary(random_bytes(4096, 1));  // deflate would grow it
  v = shared_deflate::wire_view(noise, format);
  EXPECT_FALSE(v.compressed);
  EXPECT_EQ(v.payload.data(), noise.payload().data());
  const Frame big = Frame::text(telemetry(4096));
  v = shared_deflate::wire_view(big, WireFormat{});  // a session without compression
  EXPECT_FALSE(v.compressed);
  EXPECT_EQ(v.payload, big.payload());
  EXPECT_TRUE(shared_deflate::wire_view(Frame::text(telemetry(128)), format).compressed);
}

TEST(SharedDeflateTest, InflatesClientMessagesOfEveryShape) {
  for (const std::string& message : {std::string(), std::string("x"), telemetry(1000),
                                     random_bytes(70000, 2), telemetry(1 << 20)}) {
    const auto r = shared_deflate::inflate_message(client_deflate(message), 1 << 20);
    ASSERT_EQ(r.status, InflateStatus::kOk) << message.size();
    EXPECT_EQ(std::string_view(r.bytes).substr(kFrameHeadroom), message);
  }
  // Our own deflate round-trips too (the same thread's streams are reset per message).
  for (int i = 0; i < 3; ++i) {
    const std::string m = telemetry(5000 + static_cast<std::size_t>(i));
    const auto c = shared_deflate::deflate_message(m, 15, 1);
    ASSERT_TRUE(c);
    const auto r =
        shared_deflate::inflate_message(std::string_view(*c).substr(kFrameHeadroom), m.size());
    ASSERT_EQ(r.status, InflateStatus::kOk);
    EXPECT_EQ(std::string_view(r.bytes).substr(kFrameHeadroom), m);
  }
}

TEST(SharedDeflateTest, StopsInflatingPastTheLimit) {
  // 64 MiB of zeros deflate to about 64 KiB: refused having produced about the limit, no more.
  const std::string bomb = client_deflate(std::string(64u << 20, '\0'));
  ASSERT_LT(bomb.size(), 100000u);
  const auto r = shared_deflate::inflate_message(bomb, 1 << 20);
  EXPECT_EQ(r.status, InflateStatus::kTooLarge);
  EXPECT_TRUE(r.bytes.empty());
  // Exactly at the limit is fine.
  const std::string at = telemetry(1 << 16);
  EXPECT_EQ(shared_deflate::inflate_message(client_deflate(at), at.size()).status,
            InflateStatus::kOk);
  EXPECT_EQ(shared_deflate::inflate_message(client_deflate(at), at.size() - 1).status,
            InflateStatus::kTooLarge);
}

TEST(SharedDeflateTest, CorruptInputIsRefused) {
  EXPECT_EQ(shared_deflate::inflate_message("\xff\xff\xff\xff garbage", 1 << 20).status,
            InflateStatus::kCorrupt);
  // A final block followed by more data.
  std::string final_block = "\x03\x00";  // an empty final fixed block
  EXPECT_EQ(shared_deflate::inflate_message(final_block, 100).status, InflateStatus::kOk);
  EXPECT_EQ(shared_deflate::inflate_message(final_block + "more", 100).status,
            InflateStatus::kCorrupt);
}

// A message cut inside a block is corrupt: it passed as what was inflated of it, and the trailer
// the receiver appends (00 00 ff ff) came out as data of a stored block whose header announced
// more bytes than came (a hostile probe: 5 bytes in, the echo route sent back 00 00 ff ff).
TEST(SharedDeflateTest, AMessageCutInsideABlockIsCorrupt) {
  const std::string stored_header_only("\x00\x05\x00\xfa\xff", 5);  // LEN 5, no data
  EXPECT_EQ(shared_deflate::inflate_message(stored_header_only, 100).status,
            InflateStatus::kCorrupt);
  EXPECT_EQ(shared_deflate::inflate_message(std::string("\x00\x05\x00", 3), 100).status,
            InflateStatus::kCorrupt);
  for (const std::string& message : {telemetry(3000), random_bytes(3000, 7)}) {
    const std::string whole = client_deflate(message);
    ASSERT_EQ(shared_deflate::inflate_message(whole, 1 << 20).status, InflateStatus::kOk);
    for (std::size_t cut : {whole.size() / 4, whole.size() / 2, whole.size() - 2}) {
      const auto r =
          shared_deflate::inflate_message(std::string_view(whole).substr(0, cut), 1 << 20);
      EXPECT_EQ(r.status, InflateStatus::kCorrupt) << message.size() << " cut at " << cut;
      EXPECT_TRUE(r.bytes.empty());
    }
  }
  // What every sender sends for an empty message (the empty stored block, trailer removed), and
  // no bytes at all.
  EXPECT_EQ(shared_deflate::inflate_message(std::string("\x00", 1), 100).status,
            InflateStatus::kOk);
  EXPECT_EQ(shared_deflate::inflate_message("", 100).status, InflateStatus::kOk);
  // A sender that left out the empty flush block: its message ended a block by itself (here a
  // stored block of "hello"), and the trailer begins a block header that produces nothing.
  const auto r = shared_deflate::inflate_message(std::string("\x00\x05\x00\xfa\xffhello", 10), 100);
  ASSERT_EQ(r.status, InflateStatus::kOk);
  EXPECT_EQ(std::string_view(r.bytes).substr(kFrameHeadroom), "hello");
}

}  // namespace
}  // namespace wsbridge
