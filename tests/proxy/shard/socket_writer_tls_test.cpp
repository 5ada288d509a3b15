// The write path over TLS (SocketWriter::write_tls): frames gathered into whole records, and a
// record the socket could not take kept sealed and finished first on the next call.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "proxy/shard/patterned_frame.hpp"
#include "proxy/tls/tls_pair.hpp"
#include "shard/socket_writer.hpp"

namespace wsbridge {
namespace {

using testing::client_side;
using testing::TestPki;
using testing::TlsPair;

std::shared_ptr<const tls::ServerCertificates> localhost_certificate() {
  const auto& cert = TestPki::get().server;
  tls::PairResult r =
      tls::load_certificate_pair(cert.cert_file, cert.key_file, std::chrono::system_clock::now());
  std::vector<tls::NamedCertificate> certs;
  certs.push_back(tls::NamedCertificate{{}, cert.cert_file, std::move(r.pair)});
  return std::make_shared<const tls::ServerCertificates>(
      "test", tls::TlsSettings{}, std::move(certs), std::vector<tls::X509Ptr>{});
}

using testing::patterned;

// Reads what the client can decrypt now, at most `max` bytes.
void read_some(SSL* client, std::string& out, std::size_t max) {
  char buf[16 * 1024];
  std::size_t total = 0;
  while (total < max) {
    const int n = SSL_read(client, buf, static_cast<int>(std::min(sizeof buf, max - total)));
    if (n <= 0) {
      ERR_clear_error();
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
    total += static_cast<std::size_t>(n);
  }
}

// Small and 1 MiB frames through a socket that takes a few KiB at a time: the client decrypts
// exactly the frames, in order, and records the socket did not take were finished first.
TEST(SocketWriterTlsTest, SealedRecordsKeepTheStreamIntact) {
  TlsPair pair(localhost_certificate(), client_side("localhost"));
  ASSERT_TRUE(pair.handshake());
  pair.set_send_buffer(8 * 1024);
  std::vector<Frame> sent;
  FrameQueue queue;
  std::size_t total_payload = 0;
  for (int round = 0; round < 3; ++round) {
    for (std::size_t size : {std::size_t{100}, std::size_t{64 * 1024}, std::size_t{1024 * 1024},
                             std::size_t{100}, std::size_t{0}, std::size_t{20000}}) {
      Frame f = patterned(round % 2 ? FrameKind::kText : FrameKind::kBinary, size,
                          static_cast<char>('A' + sent.size()));
      sent.push_back(f);
      queue.push_back(f);
      total_payload += size;
    }
  }
  SocketWriter writer;
  std::optional<PartialFrame> partial;
  std::size_t sealed = 0;
  std::string received;
  std::size_t frames_done = 0, payload_done = 0, dequeued = 0, sealed_rounds = 0, calls = 0;
  while (partial || !queue.empty() || sealed > 0) {
    ASSERT_LT(++calls, 200000u);
    const SocketWriter::Result r =
        writer.write_tls(pair.server, sealed, partial, queue, 256 * 1024);
    ASSERT_NE(r.status, SocketWriter::Status::kError) << r.error;
    frames_done += r.frames_done;
    payload_done += r.payload_done;
    dequeued += r.dequeued_bytes;
    if (sealed > 0) {
      ++sealed_rounds;
      EXPECT_EQ(r.status, SocketWriter::Status::kFull);
      EXPECT_LE(sealed, SocketWriter::kTlsRecordBytes);
    }
    read_some(pair.client, received, 7000);  // a slow reader
  }
  read_some(pair.client, received, SIZE_MAX);
  EXPECT_GT(sealed_rounds, 50u);  // the socket was full with a record sealed, many times
  EXPECT_EQ(frames_done, sent.size());
  EXPECT_EQ(payload_done, total_payload);
  EXPECT_EQ(dequeued, total_payload);
  std::string expected;
  for (const Frame& f : sent) {
    unsigned char header[10];
    expected.append(reinterpret_cast<const char*>(header), encode_frame_header(f, header));
    expected.append(f.payload());
  }
  ASSERT_EQ(received.size(), expected.size());
  EXPECT_TRUE(received == expected);
}

TEST(SocketWriterTlsTest, ABudgetEndsTheTurn) {
  TlsPair pair(localhost_certificate(), client_side("localhost"));
  ASSERT_TRUE(pair.handshake());
  FrameQueue queue;
  for (int i = 0; i < 8; ++i) queue.push_back(patterned(FrameKind::kBinary, 10000, 'a'));
  SocketWriter writer;
  std::optional<PartialFrame> partial;
  std::size_t sealed = 0;
  const SocketWriter::Result r = writer.write_tls(pair.server, sealed, partial, queue, 30000);
  EXPECT_EQ(r.status, SocketWriter::Status::kMore);
  EXPECT_EQ(r.wire_bytes, 30000u);  // a full record, then one of the budget's rest
  EXPECT_EQ(sealed, 0u);
  std::string received;
  read_some(pair.client, received, SIZE_MAX);
  EXPECT_EQ(received.size(), r.wire_bytes);
}

}  // namespace
}  // namespace wsbridge
