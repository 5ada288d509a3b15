// PacketReader (plugins/mqtt/passthrough/mqtt_reader.cpp): packets split across feeds at every
// offset, several packets in one feed without copies, the size limit reported from the header
// alone, and malformed fixed headers.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "passthrough/mqtt_packets.hpp"
#include "wire_bytes.hpp"

namespace wsbridge::mqtt::wire {
namespace {

using test::bytes;
using test::hex;
using Status = PacketReader::Status;

// A stream of packets of different header sizes: PINGREQ (no body), a PUBACK, and a PUBLISH of
// 200 bytes whose remaining length takes two bytes.
std::vector<std::string> sample_packets() {
  std::string publish = bytes({0x30, 0xC5, 0x01, 0x00, 0x01}) + "t";  // remaining length 197
  publish += std::string(194, 'p');
  return {bytes({0xC0, 0x00}), bytes({0x40, 0x02, 0x00, 0x07}), publish, bytes({0xE0, 0x00})};
}

std::string joined(const std::vector<std::string>& packets) {
  std::string out;
  for (const auto& p : packets) out += p;
  return out;
}

// Feeds `chunks` in turn and collects every packet (copied, as views end at the next feed).
std::vector<std::string> read_all(PacketReader& reader, const std::vector<std::string>& chunks) {
  std::vector<std::string> out;
  for (const auto& chunk : chunks) {
    reader.feed(chunk);
    std::string_view packet;
    Status status;
    while ((status = reader.next(packet)) == Status::kPacket) out.emplace_back(packet);
    EXPECT_EQ(status, Status::kNeedMore) << reader.error();
  }
  return out;
}

TEST(PacketReaderTest, SamplePublishHasATwoByteLength) {
  const auto packets = sample_packets();
  ASSERT_EQ(packets[2].size(), 200u);
  EXPECT_EQ(packet_body(packets[2]).size(), 197u);
  EXPECT_EQ(packet_type(packets[2]), PacketType::kPublish);
}

TEST(PacketReaderTest, SeveralPacketsInOneFeedAreViewsIntoIt) {
  const auto packets = sample_packets();
  const std::string stream = joined(packets);
  PacketReader reader(1024);
  reader.feed(stream);
  std::string_view packet;
  for (const auto& expected : packets) {
    ASSERT_EQ(reader.next(packet), Status::kPacket) << reader.error();
    EXPECT_EQ(packet, expected);
    // Zero-copy: the view points into the fed bytes.
    EXPECT_GE(packet.data(), stream.data());
    EXPECT_LE(packet.data() + packet.size(), stream.data() + stream.size());
    EXPECT_EQ(reader.buffered(), 0u);
  }
  EXPECT_EQ(reader.next(packet), Status::kNeedMore);
}

TEST(PacketReaderTest, SplitAtEveryOffset) {
  const auto packets = sample_packets();
  const std::string stream = joined(packets);
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    PacketReader reader(1024);
    const auto got = read_all(reader, {stream.substr(0, cut), stream.substr(cut)});
    EXPECT_EQ(got, packets) << "split at " << cut;
    EXPECT_EQ(reader.buffered(), 0u);
  }
}

TEST(PacketReaderTest, SplitAtEveryPairOfOffsets) {
  const auto packets = sample_packets();
  const std::string stream = joined(packets);
  for (std::size_t a = 0; a <= stream.size(); a += 3) {
    for (std::size_t b = a; b <= stream.size(); ++b) {
      PacketReader reader(1024);
      const auto got =
          read_all(reader, {stream.substr(0, a), stream.substr(a, b - a), stream.substr(b)});
      ASSERT_EQ(got, packets) << "split at " << a << " and " << b;
    }
  }
}

TEST(PacketReaderTest, OneByteAtATime) {
  const auto packets = sample_packets();
  const std::string stream = joined(packets);
  std::vector<std::string> chunks;
  for (char c : stream) chunks.emplace_back(1, c);
  PacketReader reader(1024);
  EXPECT_EQ(read_all(reader, chunks), packets);
}

// A packet assembled from earlier feeds stays valid while later packets of the same feed are
// read and its incomplete tail is copied.
TEST(PacketReaderTest, AssembledPacketOutlivesTheTailOfTheSameFeed) {
  const auto packets = sample_packets();
  PacketReader reader(1024);
  reader.feed(std::string_view(packets[2]).substr(0, 50));
  std::string_view first, second, none;
  EXPECT_EQ(reader.next(first), Status::kNeedMore);
  EXPECT_EQ(reader.buffered(), 50u);
  const std::string rest = packets[2].substr(50) + packets[1] + packets[2].substr(0, 120);
  reader.feed(rest);
  ASSERT_EQ(reader.next(first), Status::kPacket);
  ASSERT_EQ(reader.next(second), Status::kPacket);
  EXPECT_EQ(reader.next(none), Status::kNeedMore);
  EXPECT_EQ(reader.buffered(), 120u);
  EXPECT_EQ(first, packets[2]);
  EXPECT_EQ(second, packets[1]);
}

TEST(PacketReaderTest, PacketAtTheLimitPasses) {
  const auto packets = sample_packets();
  PacketReader reader(200);
  EXPECT_EQ(read_all(reader, {packets[2]}), std::vector<std::string>{packets[2]});
  EXPECT_FALSE(reader.too_large());
}

TEST(PacketReaderTest, TooLargeFromTheHeaderAloneWithoutBuffering) {
  // A PUBLISH announcing 2 MiB (remaining length 0x80 0x80 0x80 0x01), of which only a few body
  // bytes arrive: refused at once, nothing kept.
  PacketReader reader(1 << 20);
  // (The fed bytes must outlive the reads: the reader keeps a view of them until the next feed.)
  const std::string input = bytes({0xC0, 0x00, 0x30, 0x80, 0x80, 0x80, 0x01, 0x00, 0x01, 't'});
  reader.feed(input);
  std::string_view packet;
  ASSERT_EQ(reader.next(packet), Status::kPacket);
  EXPECT_EQ(reader.next(packet), Status::kError);
  EXPECT_TRUE(reader.too_large());
  EXPECT_NE(reader.error().find("over the limit"), std::string::npos) << reader.error();
  EXPECT_EQ(reader.buffered(), 0u);
  // It stays in error, whatever comes next.
  const std::string ping = bytes({0xC0, 0x00});
  reader.feed(ping);
  EXPECT_EQ(reader.next(packet), Status::kError);
}

TEST(PacketReaderTest, TooLargeWhenTheHeaderIsSplit) {
  PacketReader reader(100);
  std::string_view packet;
  const std::string head = bytes({0x30, 0xE5});  // remaining length continues
  reader.feed(head);
  EXPECT_EQ(reader.next(packet), Status::kNeedMore);
  EXPECT_EQ(reader.buffered(), 2u);
  const std::string rest = bytes({0x01, 'x', 'y'});  // 229 bytes of remaining length
  reader.feed(rest);
  EXPECT_EQ(reader.next(packet), Status::kError);
  EXPECT_TRUE(reader.too_large());
  EXPECT_EQ(reader.buffered(), 0u);
}

// skip_oversized (a 3.1.1 broker's delivery over the route's limit): the packet's start comes
// as kOversized, the rest is skipped as it arrives, and the packets behind it come as usual, at
// every split of the stream.
TEST(PacketReaderTest, SkipsOversizedPacketsAfterGivingTheirStart) {
  const auto packets = sample_packets();  // PINGREQ, PUBACK, a 200-byte PUBLISH, DISCONNECT
  const std::string stream = joined(packets) + packets[2] + packets[1];
  for (std::size_t piece = 1; piece <= stream.size(); piece += (piece < 12 ? 1 : 37)) {
    SCOPED_TRACE(piece);
    PacketReader reader(100);
    reader.skip_oversized(9);
    std::vector<std::string> chunks;
    for (std::size_t at = 0; at < stream.size(); at += piece)
      chunks.push_back(stream.substr(at, piece));
    std::vector<std::string> got;
    for (const auto& chunk : chunks) {
      reader.feed(chunk);
      std::string_view packet;
      Status status;
      while ((status = reader.next(packet)) != Status::kNeedMore) {
        ASSERT_NE(status, Status::kError) << reader.error();
        got.push_back((status == Status::kOversized ? "over:" : "") + std::string(packet));
      }
      EXPECT_LE(reader.buffered(), 9u) << "more than the start of an oversized packet held";
    }
    const std::string start = "over:" + packets[2].substr(0, 9);
    EXPECT_EQ(got, (std::vector<std::string>{packets[0], packets[1], start, packets[3], start,
                                             packets[1]}));
  }
  // A start longer than the packet itself: all of it.
  PacketReader whole(100);
  whole.skip_oversized(1000);
  const std::string input = packets[2] + packets[0];
  whole.feed(input);
  std::string_view packet;
  ASSERT_EQ(whole.next(packet), Status::kOversized);
  EXPECT_EQ(packet, packets[2]);
  ASSERT_EQ(whole.next(packet), Status::kPacket);
  EXPECT_EQ(packet, packets[0]);
}

TEST(PacketReaderTest, MalformedHeaders) {
  struct Case {
    std::string stream;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {bytes({0x00, 0x00}), "type 0"},
      {bytes({0x0F, 0x00}), "type 0"},
      {bytes({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}), "longer than 4 bytes"},
      // Refused once the fourth length byte is there, without waiting for a fifth.
      {bytes({0x30, 0x80, 0x80, 0x80, 0x80}), "longer than 4 bytes"},
      {bytes({0xC0, 0x00, 0x00}), "type 0"},
      // Lengths in more bytes than they need: 0 in two, 127 in three [MQTT-1.5.5-1].
      {bytes({0xC0, 0x80, 0x00}), "shortest encoding"},
      {bytes({0x30, 0xFF, 0x80, 0x00, 0x01}), "shortest encoding"},
  };
  for (const auto& c : cases) {
    for (std::size_t cut = 0; cut <= c.stream.size(); ++cut) {
      PacketReader reader(1 << 20);
      std::string_view packet;
      Status status = Status::kNeedMore;
      for (const std::string& chunk : {c.stream.substr(0, cut), c.stream.substr(cut)}) {
        reader.feed(chunk);
        while ((status = reader.next(packet)) == Status::kPacket) {
        }
        if (status == Status::kError) break;
      }
      EXPECT_EQ(status, Status::kError) << hex(c.stream) << " split at " << cut;
      EXPECT_NE(reader.error().find(c.reason), std::string::npos) << reader.error();
      EXPECT_FALSE(reader.too_large());
    }
  }
}

TEST(PacketReaderTest, LargestFourByteLength) {
  // 268435455 = 0xFF 0xFF 0xFF 0x7F: a valid header, over any sane limit.
  PacketReader reader(1 << 20);
  const std::string header = bytes({0x30, 0xFF, 0xFF, 0xFF, 0x7F});
  reader.feed(header);
  std::string_view packet;
  EXPECT_EQ(reader.next(packet), Status::kError);
  EXPECT_TRUE(reader.too_large());
  EXPECT_NE(reader.error().find("268435460 bytes"), std::string::npos) << reader.error();
}

TEST(PacketReaderTest, PacketBody) {
  EXPECT_EQ(packet_body(bytes({0xC0, 0x00})), "");
  EXPECT_EQ(packet_body(bytes({0x40, 0x02, 0x00, 0x07})), bytes({0x00, 0x07}));
  EXPECT_EQ(packet_body(sample_packets()[2]).substr(0, 3), bytes({0x00, 0x01, 't'}));
}

TEST(PacketReaderTest, FixedHeaderProblem) {
  for (int first :
       {0x10, 0x20, 0x30, 0x3B, 0x40, 0x50, 0x62, 0x70, 0x82, 0x90, 0xA2, 0xB0, 0xC0, 0xD0, 0xE0}) {
    EXPECT_EQ(fixed_header_problem(bytes({first, 0x00}), kMqtt311), std::nullopt) << first;
  }
  EXPECT_EQ(fixed_header_problem(bytes({0xF0, 0x00}), kMqtt5), std::nullopt);
  EXPECT_EQ(fixed_header_problem(bytes({0xF0, 0x00}), kMqtt311), "AUTH exists in MQTT 5 only");
  EXPECT_EQ(fixed_header_problem(bytes({0x36, 0x00}), kMqtt5), "PUBLISH QoS 3 is invalid");
  EXPECT_EQ(fixed_header_problem(bytes({0xC1, 0x00}), kMqtt5),
            "fixed header flags of packet type 12 must be 0");
  EXPECT_EQ(fixed_header_problem(bytes({0x60, 0x00}), kMqtt5),
            "fixed header flags of packet type 6 must be 2");
  EXPECT_EQ(fixed_header_problem(bytes({0x80, 0x00}), kMqtt5),
            "fixed header flags of packet type 8 must be 2");
}

}  // namespace
}  // namespace wsbridge::mqtt::wire
