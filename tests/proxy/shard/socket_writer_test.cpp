// The direct write path (proxy/src/shard/socket_writer.*): frames as iovecs over the shared
// payload, many per sendmsg(), and the offset kept when the socket takes part of one.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "proxy/shard/patterned_frame.hpp"
#include "shard/socket_writer.hpp"
#include "support/ws_test_client.hpp"

namespace wsbridge {
namespace {

// A connected non-blocking socketpair whose writing end has a small send buffer, so writes of
// large frames end part-way.
struct SmallPipe {
  int fds[2] = {-1, -1};
  SmallPipe() {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    int size = 8 * 1024;  // the kernel doubles it and rounds up to its minimum
    EXPECT_EQ(::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
    EXPECT_EQ(::setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof size), 0);
  }
  ~SmallPipe() {
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }
  // Reads what is there, at most `max` bytes.
  std::size_t read_into(std::string& out, std::size_t max) {
    char buf[16 * 1024];
    std::size_t total = 0;
    while (total < max) {
      const ssize_t n = ::read(fds[1], buf, std::min(sizeof buf, max - total));
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
      total += static_cast<std::size_t>(n);
    }
    return total;
  }
};

using testing::patterned;

TEST(SocketWriterTest, EncodesServerFrameHeaders) {
  unsigned char h[10];
  ASSERT_EQ(encode_frame_header(Frame::text(""), h), 2u);
  EXPECT_EQ(h[0], 0x81);
  EXPECT_EQ(h[1], 0x00);
  ASSERT_EQ(encode_frame_header(Frame::binary(std::string(125, 'x')), h), 2u);
  EXPECT_EQ(h[0], 0x82);
  EXPECT_EQ(h[1], 125);
  ASSERT_EQ(encode_frame_header(Frame::text(std::string(126, 'x')), h), 4u);
  EXPECT_EQ(h[1], 126);
  EXPECT_EQ(h[2] << 8 | h[3], 126);
  ASSERT_EQ(encode_frame_header(Frame::text(std::string(65535, 'x')), h), 4u);
  EXPECT_EQ(h[2] << 8 | h[3], 65535);
  ASSERT_EQ(encode_frame_header(Frame::binary(std::string(65536, 'x')), h), 10u);
  EXPECT_EQ(h[1], 127);
  std::uint64_t len = 0;
  for (int i = 2; i < 10; ++i) len = len << 8 | h[i];
  EXPECT_EQ(len, 65536u);
  EXPECT_EQ(wire_size(Frame::binary(std::string(65536, 'x'))), 65546u);
}

TEST(SocketWriterTest, IovecsPointIntoTheSharedPayloads) {
  FrameQueue queue;
  const std::vector<Frame> frames = {patterned(FrameKind::kText, 100, 'a'),
                                     patterned(FrameKind::kBinary, 64 * 1024, 'b'),
                                     patterned(FrameKind::kBinary, 1024 * 1024, 'c')};
  for (const Frame& f : frames) queue.push_back(f);
  SocketWriter writer;
  std::optional<PartialFrame> partial;
  const std::size_t offered = writer.gather(partial, queue, 16 * 1024 * 1024);
  std::size_t expected = 0;
  for (const Frame& f : frames) expected += wire_size(f);
  EXPECT_EQ(offered, expected);
  const auto iov = writer.iovecs();
  ASSERT_EQ(iov.size(), 6u);  // header, payload per frame
  for (std::size_t i = 0; i < frames.size(); ++i) {
    // The payload iovec is the frame's own buffer: nothing was copied.
    EXPECT_EQ(iov[2 * i + 1].iov_base, frames[i].payload().data());
    EXPECT_EQ(iov[2 * i + 1].iov_len, frames[i].size());
    EXPECT_EQ(frames[i].use_count(), 2);  // the vector's and the queue's
  }
  // A budget ending inside the second payload cuts the offer there.
  EXPECT_EQ(writer.gather(partial, queue, 102 + 10 + 4), 116u);
  ASSERT_EQ(writer.iovecs().size(), 4u);
  EXPECT_EQ(writer.iovecs()[2].iov_len, 10u);  // 64 KiB needs the 64-bit length
  EXPECT_EQ(writer.iovecs()[3].iov_len, 4u);
  // The rest of a partial frame: from its offset, inside the same buffer.
  partial = PartialFrame{frames[2], 10 + 5000};
  writer.gather(partial, queue, 1);
  ASSERT_EQ(writer.iovecs().size(), 1u);
  EXPECT_EQ(writer.iovecs()[0].iov_base, frames[2].payload().data() + 5000);
}

// 100 B, 64 KiB and 1 MiB frames, mixed, through a socket that takes a few KiB at a time: the
// bytes read on the other side are exactly the frames, in order.
TEST(SocketWriterTest, PartialWritesKeepTheStreamIntact) {
  SmallPipe pipe;
  std::vector<Frame> sent;
  FrameQueue queue;
  std::size_t total_payload = 0;
  for (int round = 0; round < 3; ++round) {
    for (std::size_t size : {std::size_t{100}, std::size_t{64 * 1024}, std::size_t{1024 * 1024},
                             std::size_t{100}, std::size_t{0}}) {
      Frame f = patterned(round % 2 ? FrameKind::kText : FrameKind::kBinary, size,
                          static_cast<char>('A' + sent.size()));
      sent.push_back(f);
      queue.push_back(f);
      total_payload += size;
    }
  }
  SocketWriter writer;
  std::optional<PartialFrame> partial;
  std::string received;
  std::size_t frames_done = 0, payload_done = 0, dequeued = 0, partial_rounds = 0, calls = 0;
  while (partial || !queue.empty()) {
    ASSERT_LT(++calls, 100000u);
    const SocketWriter::Result r = writer.write(pipe.fds[0], partial, queue, 256 * 1024);
    ASSERT_NE(r.status, SocketWriter::Status::kError) << std::strerror(r.error);
    frames_done += r.frames_done;
    payload_done += r.payload_done;
    dequeued += r.dequeued_bytes;
    if (partial) {
      ++partial_rounds;
      // The partly written frame is still the sender's buffer, not a copy of its rest.
      const Frame& original = sent[frames_done];
      EXPECT_EQ(partial->frame.payload().data(), original.payload().data());
      EXPECT_LT(partial->sent, wire_size(original));
    }
    pipe.read_into(received, 7000);  // a slow reader: a few KiB per round
  }
  pipe.read_into(received, SIZE_MAX);
  EXPECT_GT(partial_rounds, 100u);  // the 1 MiB frames went out in many pieces
  EXPECT_EQ(frames_done, sent.size());
  EXPECT_EQ(payload_done, total_payload);
  EXPECT_EQ(dequeued, total_payload);

  std::size_t i = 0;
  while (auto frame = testing::decode_frame(received)) {
    ASSERT_LT(i, sent.size());
    EXPECT_TRUE(frame->fin);
    EXPECT_FALSE(frame->masked);
    EXPECT_EQ(frame->opcode, sent[i].is_text() ? testing::Opcode::kText : testing::Opcode::kBinary);
    EXPECT_TRUE(frame->payload == sent[i].payload()) << "frame " << i << " differs";
    ++i;
  }
  EXPECT_EQ(i, sent.size());
  EXPECT_TRUE(received.empty()) << received.size() << " stray bytes";
}

// Shared permessage-deflate: compressible frames go out as their shared compressed variant with
// RSV1, others as they are, through partial writes; the bytes inflate back to every frame.
TEST(SocketWriterTest, WritesTheSharedCompressedVariantWithRsv1) {
  SmallPipe pipe;
  std::vector<Frame> sent;
  FrameQueue queue;
  std::string json;
  while (json.size() < 300000) json += R"({"topic":"plant/7/temp","value":21.5},)";
  for (std::size_t size : {std::size_t{40}, std::size_t{5000}, std::size_t{300000}}) {
    Frame f = Frame::text(std::string_view(json).substr(0, size));
    sent.push_back(f);
    queue.push_back(f);
  }
  const shared_deflate::WireFormat format = shared_deflate::format_for(15, 1, 128);
  SocketWriter writer;
  std::optional<PartialFrame> partial;
  std::string received;
  std::size_t frames_done = 0;
  for (int calls = 0; partial || !queue.empty(); ++calls) {
    ASSERT_LT(calls, 10000);
    const auto r = writer.write(pipe.fds[0], partial, queue, 256 * 1024, format);
    ASSERT_NE(r.status, SocketWriter::Status::kError);
    frames_done += r.frames_done;
    pipe.read_into(received, 3000);
  }
  pipe.read_into(received, SIZE_MAX);
  EXPECT_EQ(frames_done, 3u);
  std::vector<testing::Frame> frames;
  while (auto f = testing::decode_frame(received)) frames.push_back(*f);
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_FALSE(frames[0].rsv1);  // under the threshold
  EXPECT_EQ(frames[0].payload, sent[0].payload());
  for (int i : {1, 2}) {
    EXPECT_TRUE(frames[i].rsv1);
    EXPECT_LT(frames[i].payload.size(), sent[i].size() / 4);
    testing::Inflater inflater;
    EXPECT_TRUE(inflater.decompress(frames[i].payload) == sent[i].payload()) << i;
  }
  // Every session with this format is written the same compressed bytes: they were built once.
  EXPECT_NE(sent[2].find_variant(format.key), nullptr);
}

TEST(SocketWriterTest, StopsAtTheBudgetAndWhenTheSocketIsFull) {
  SmallPipe pipe;
  FrameQueue queue;
  for (int i = 0; i < 100; ++i) queue.push_back(patterned(FrameKind::kText, 100, 'x'));
  SocketWriter writer;
  std::optional<PartialFrame> partial;
  auto r = writer.write(pipe.fds[0], partial, queue, 1000);
  EXPECT_EQ(r.status, SocketWriter::Status::kMore);
  EXPECT_EQ(r.wire_bytes, 1000u);  // 9 frames of 102 bytes and 82 bytes of the tenth
  EXPECT_EQ(r.frames_done, 9u);
  ASSERT_TRUE(partial);
  EXPECT_EQ(partial->sent, 82u);
  EXPECT_EQ(queue.size(), 90u);
  // Nobody reads: the socket fills up.
  queue.push_back(patterned(FrameKind::kBinary, 4 * 1024 * 1024, 'y'));
  r = writer.write(pipe.fds[0], partial, queue, SIZE_MAX);
  EXPECT_EQ(r.status, SocketWriter::Status::kFull);
  r = writer.write(pipe.fds[0], partial, queue, SIZE_MAX);
  EXPECT_EQ(r.status, SocketWriter::Status::kFull);
  EXPECT_EQ(r.wire_bytes, 0u);
}

TEST(SocketWriterTest, APeerThatIsGoneIsAnErrorNotASignal) {
  SmallPipe pipe;
  ::close(pipe.fds[1]);
  pipe.fds[1] = -1;
  FrameQueue queue;
  queue.push_back(Frame::text("to nobody"));
  SocketWriter writer;
  std::optional<PartialFrame> partial;
  const auto r = writer.write(pipe.fds[0], partial, queue, 1024);  // MSG_NOSIGNAL: no SIGPIPE
  EXPECT_EQ(r.status, SocketWriter::Status::kError);
  EXPECT_EQ(r.error, EPIPE);
}

}  // namespace
}  // namespace wsbridge
