// The byte-stream follower behind the unmasked-frame check and the 431/400 answers
// (proxy/src/recv_hook/mask_guard.cpp): request heads and frames fed in reads of every size,
// as lws would read them. The bearer filter it drives:
// tests/proxy/handshake/bearer_subprotocol_head_filter_test.cpp.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "recv_hook/mask_guard.hpp"
#include "support/ws_test_client.hpp"

namespace wsbridge {
namespace {

using testing::encode_frame;
using testing::Opcode;

std::size_t feed(FrameMaskScanner& s, std::string& bytes) {
  return s.feed(reinterpret_cast<unsigned char*>(bytes.data()), bytes.size());
}
std::size_t feed(FrameMaskScanner& s, const std::string& bytes) {
  std::string copy = bytes;
  return feed(s, copy);
}

std::string masked(Opcode op, const std::string& payload, bool fin = true) {
  return encode_frame(op, payload, fin, testing::random_mask_key());
}
// Masked with the key 0: the payload is on the wire as it is (a client may choose that key).
std::string masked_plain(Opcode op, const std::string& payload) {
  return encode_frame(op, payload, true, testing::MaskKey{0, 0, 0, 0});
}
std::string unmasked(Opcode op, const std::string& payload) {
  return encode_frame(op, payload, true, std::nullopt);
}

const std::string kUpgradeHead =
    "GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

TEST(FrameMaskScannerTest, AcceptsMaskedFramesOfEveryLengthForm) {
  FrameMaskScanner s;
  std::string stream;
  for (std::size_t n : {0u, 5u, 125u, 126u, 65535u, 65536u, 300000u}) {
    stream += masked(Opcode::kBinary, std::string(n, 'x'));
  }
  EXPECT_EQ(feed(s, stream), stream.size());
  EXPECT_FALSE(s.violated());
}

TEST(FrameMaskScannerTest, FollowsFramesSplitAtEveryByte) {
  const std::string stream = masked(Opcode::kText, std::string(300, 'a'), false) +
                             masked(Opcode::kContinuation, "b") + masked(Opcode::kPing, "p");
  FrameMaskScanner s;
  for (char c : stream) EXPECT_EQ(feed(s, std::string(1, c)), 1u);
  EXPECT_FALSE(s.violated());
}

// lws answers a PING or a close by itself from its next POLLOUT turn: the scanner says when one
// came (the data path then writes nothing outside lws' turn), and forgets it once told.
TEST(FrameMaskScannerTest, SaysWhenLwsOwesAnAnswer) {
  FrameMaskScanner s;
  feed(s, masked(Opcode::kText, "a") + masked(Opcode::kBinary, std::string(300, 'b')) +
              masked(Opcode::kPong, "p"));
  EXPECT_FALSE(s.answer_due()) << "data and PONGs are not answered";
  const std::string ping = masked(Opcode::kPing, "p");
  feed(s, ping.substr(0, 1));
  EXPECT_TRUE(s.answer_due()) << "known from the PING's first byte";
  feed(s, ping.substr(1));
  s.answered();
  EXPECT_FALSE(s.answer_due());
  // A payload byte that looks like a PING's first byte is a payload byte.
  feed(s, masked_plain(Opcode::kBinary, std::string(10, '\x89')));
  EXPECT_FALSE(s.answer_due());
  feed(s, masked(Opcode::kClose, std::string("\x03\xe8", 2)));
  EXPECT_TRUE(s.answer_due());
}

// Shared permessage-deflate: RSV1 comes off the first frame of each compressed data message (lws
// would refuse it), and the session learns, message by message, which ones were compressed.
TEST(FrameMaskScannerTest, TakesRsv1OffCompressedMessagesAndQueuesWhichWere) {
  const auto key = testing::random_mask_key();
  std::string stream = encode_frame(Opcode::kText, "deflated", true, key, /*rsv1=*/true) +
                       encode_frame(Opcode::kPing, "p", true, key) +
                       encode_frame(Opcode::kBinary, "plain", true, key) +
                       encode_frame(Opcode::kBinary, "first", false, key, true) +
                       encode_frame(Opcode::kContinuation, "rest", true, key);
  const std::string original = stream;
  FrameMaskScanner s;
  s.accept_compressed();
  // Fed a byte at a time: the header byte is rewritten wherever a read ends.
  for (std::size_t i = 0; i < stream.size(); ++i) {
    ASSERT_EQ(s.feed(reinterpret_cast<unsigned char*>(stream.data()) + i, 1), 1u);
  }
  EXPECT_EQ(s.queued(), 3u);
  EXPECT_TRUE(s.take_compressed());
  EXPECT_FALSE(s.take_compressed());
  EXPECT_TRUE(s.take_compressed());
  EXPECT_FALSE(s.take_compressed());  // nothing queued
  std::string rest = stream;
  std::size_t frames = 0;
  while (auto f = testing::decode_frame(rest)) {
    EXPECT_FALSE(f->rsv1) << "frame " << frames;  // lws sees no RSV1 at all
    ++frames;
  }
  EXPECT_EQ(frames, 5u);
  EXPECT_EQ(stream.size(), original.size());
}

// RSV1 on a control frame or a continuation is a protocol error (RFC 7692 6.1) whatever was
// agreed: refused here, since lws' own extension (per_connection) answered such a PING and took
// such a continuation. On a data message's first frame of a connection that agreed no
// compression it is left for lws, which refuses any RSV bit there.
TEST(FrameMaskScannerTest, RefusesRsv1OnControlAndContinuationFrames) {
  const auto key = testing::random_mask_key();
  const std::string first = encode_frame(Opcode::kText, "a", false, key);
  for (const bool agreed : {false, true}) {
    for (const std::string& bad :
         {encode_frame(Opcode::kPing, "p", true, key, true),
          encode_frame(Opcode::kClose, std::string("\x03\xe8", 2), true, key, true),
          encode_frame(Opcode::kContinuation, "b", true, key, true)}) {
      FrameMaskScanner s;
      if (agreed) s.accept_compressed();
      EXPECT_EQ(feed(s, first + bad), first.size()) << "the frames before it go to lws";
      ASSERT_TRUE(s.violated());
      EXPECT_EQ(s.violation().code, 1002);
    }
  }
  std::string plain = encode_frame(Opcode::kText, "c", true, key, true);
  FrameMaskScanner s;
  EXPECT_EQ(feed(s, plain), plain.size());
  EXPECT_FALSE(s.violated());
  EXPECT_TRUE(testing::decode_frame(plain)->rsv1);  // left for lws
  EXPECT_EQ(s.queued(), 0u);                        // only agreed connections queue anything
}

// RFC 6455 5.2: a 64-bit length's top bit must be 0; lws dropped such a frame's connection
// without a close frame.
TEST(FrameMaskScannerTest, RefusesA64BitLengthWithItsTopBitSet) {
  for (const bool bytewise : {false, true}) {
    const std::string before = masked(Opcode::kText, "first");
    const std::string bad =
        std::string("\x82\xff\x80\x00\x00\x00\x00\x00\x00\x01\x01\x02\x03\x04", 14);
    const std::string stream = before + bad;
    FrameMaskScanner s;
    std::size_t accepted = 0;
    for (std::size_t i = 0; i < stream.size() && !s.violated(); i += bytewise ? 1 : stream.size()) {
      accepted += feed(s, stream.substr(i, bytewise ? 1 : stream.size()));
    }
    ASSERT_TRUE(s.violated()) << bytewise;
    EXPECT_EQ(s.violation().code, 1002);
    if (!bytewise) {
      EXPECT_EQ(accepted, before.size());
    }
  }
  // The largest length a frame may announce passes.
  const std::string big =
      std::string("\x82\xff\x7f\xff\xff\xff\xff\xff\xff\xff\x01\x02\x03\x04", 14);
  FrameMaskScanner s;
  EXPECT_EQ(feed(s, big), big.size());
  EXPECT_FALSE(s.violated());
}

TEST(FrameMaskScannerTest, StopsAtTheFirstUnmaskedFrame) {
  const std::string good = masked(Opcode::kText, "ok");
  const std::string bad = unmasked(Opcode::kText, "bad");
  FrameMaskScanner s;
  EXPECT_EQ(feed(s, good + bad + good), good.size());
  EXPECT_TRUE(s.violated());
  EXPECT_EQ(feed(s, good), 0u);
}

TEST(FrameMaskScannerTest, UnmaskedHeaderSplitAcrossReadsGivesNothingMore) {
  const std::string bad = unmasked(Opcode::kText, "bad");
  FrameMaskScanner s;
  EXPECT_EQ(feed(s, bad.substr(0, 1)), 1u);  // the first header byte says nothing about masking
  EXPECT_EQ(feed(s, bad.substr(1)), 0u);
  EXPECT_TRUE(s.violated());
}

// What lws 4.1.6 echoed back or dropped without a close frame, refused here with its code; split
// at every byte, as reads may come.
TEST(FrameMaskScannerTest, ChecksCloseFramesAndControlFrameLengths) {
  struct Case {
    Opcode op;
    std::string payload;
    std::uint16_t code;  // 0: valid
  };
  const std::vector<Case> cases = {
      {Opcode::kClose, std::string("\x03\xe8", 2), 0},
      {Opcode::kClose, std::string("\x0f\xa0\xc3\xa9", 4), 0},  // 4000, "é"
      {Opcode::kClose, "", 0},
      {Opcode::kClose, "x", 1002},
      {Opcode::kClose, std::string("\x03\xee", 2), 1002},  // 1006
      {Opcode::kClose, std::string("\x13\x88", 2), 1002},  // 5000
      {Opcode::kClose, std::string("\x03\xe8\xc3", 3), 1007},
      {Opcode::kPing, std::string(125, 'p'), 0},
      {Opcode::kPing, std::string(126, 'p'), 1002},
      {Opcode::kPong, std::string(200, 'p'), 1002},
  };
  for (const Case& c : cases) {
    for (const bool bytewise : {false, true}) {
      SCOPED_TRACE(std::to_string(static_cast<int>(c.op)) + " " + std::to_string(c.payload.size()));
      const std::string before = masked(Opcode::kText, "first");
      const std::string stream = before + masked(c.op, c.payload) + masked(Opcode::kText, "after");
      FrameMaskScanner s;
      std::size_t accepted = 0;
      if (bytewise) {
        for (std::size_t i = 0; i < stream.size() && !s.violated(); ++i) {
          accepted += feed(s, stream.substr(i, 1));
        }
      } else {
        accepted = feed(s, stream);
      }
      EXPECT_EQ(s.violated(), c.code != 0);
      if (c.code != 0) {
        EXPECT_EQ(s.violation().code, c.code);
        if (!bytewise) {
          EXPECT_EQ(accepted, before.size()) << "the frames before it go to lws";
        }
      } else {
        EXPECT_EQ(accepted, stream.size());
      }
    }
  }
}

// ---- The guard, fed as lws reads ------------------------------------------------------------

struct RecordingSink final : UnmaskedFrameSink {
  virtual ~RecordingSink() = default;
  void on_unmasked_frame(int fd) override { fds.push_back(fd); }
  void on_plaintext_waiting(int fd) override { waiting.push_back(fd); }
  void on_request_waiting(int fd) override { requests.push_back(fd); }
  std::vector<int> fds;
  std::vector<int> waiting;
  std::vector<int> requests;
};

// A socket that hands out `stream` in reads of at most `piece` bytes.
struct Source {
  std::string stream;
  std::size_t off = 0;
  std::size_t piece = 1;
};
Source* g_source = nullptr;
ssize_t fake_recv(int, void* buffer, std::size_t length, int flags) {
  if (g_source->off == g_source->stream.size()) {
    errno = EAGAIN;
    return -1;
  }
  const std::size_t n =
      std::min({length, g_source->piece, g_source->stream.size() - g_source->off});
  std::memcpy(buffer, g_source->stream.data() + g_source->off, n);
  if ((flags & MSG_PEEK) == 0) g_source->off += n;
  return static_cast<ssize_t>(n);
}

struct LwsRun {
  std::string got;  // what lws received
  bool blocked = false;
  std::vector<int> reports;
};

// Plays lws: reads 4 KiB at a time through the guard; after the read that completes the head
// at position `upgrade_at` of what it got (npos: never), upgrades; `refuse_at` heads are refused.
LwsRun run_lws(const std::string& stream, std::size_t piece, std::size_t upgrade_at,
               std::size_t refuse_at = std::string::npos) {
  constexpr int fd = 4000;  // any number: the guard only follows what it is shown
  RecordingSink sink;
  Source source{stream, 0, piece};
  g_source = &source;
  mask_guard::watch_http(fd, &sink);
  LwsRun run;
  bool upgraded = false;
  bool refused = false;
  char buffer[4096];
  while (source.off < source.stream.size() && !mask_guard::blocked(fd)) {
    const ssize_t n = mask_guard::guarded_recv(fd, buffer, sizeof buffer, 0, fake_recv);
    if (n == 0) break;
    if (n > 0) run.got.append(buffer, static_cast<std::size_t>(n));
    if (!refused && refuse_at != std::string::npos && run.got.size() >= refuse_at) {
      refused = true;
      mask_guard::upgrade_refused(fd);
    }
    if (!upgraded && upgrade_at != std::string::npos && run.got.size() >= upgrade_at) {
      upgraded = true;
      mask_guard::start_websocket(fd);
    }
  }
  run.blocked = mask_guard::blocked(fd);
  run.reports = sink.fds;
  mask_guard::forget(fd);
  g_source = nullptr;
  return run;
}

std::vector<std::size_t> pieces() {
  std::vector<std::size_t> all;
  for (std::size_t p = 1; p <= 40; ++p) all.push_back(p);
  for (std::size_t p : {63, 64, 65, 127, 128, 200, 1000, 4096}) all.push_back(p);
  return all;
}

TEST(MaskGuardTest, UnwatchedDescriptorsPassThrough) {
  char buf[4] = {'a', 'b', 'c', 'd'};
  EXPECT_EQ(mask_guard::after_recv(12345, buf, 4), 4);
  EXPECT_FALSE(mask_guard::blocked(12345));
}

TEST(MaskGuardTest, APayloadHoldingAHeadEndDoesNotRestartTheParse) {
  // #13 point 6: masked frames whose payloads hold "\r\n\r\n" on the wire (a 16-bit
  // length, a control frame), the last followed by what reads as a masked frame header long
  // enough to swallow the unmasked frame behind it; then the unmasked frame.
  const std::string evil = unmasked(Opcode::kText, "evil");
  const std::string frames =
      masked_plain(Opcode::kText, "a\r\n\r\nb") +
      masked_plain(Opcode::kBinary, std::string(300, '\n') + "\r\n\r\n") +
      masked_plain(Opcode::kPing, "\r\n\r\n") +
      masked_plain(Opcode::kBinary, "\r\n\r\n" + std::string("\x82\xbf", 2) + std::string(4, '\0') +
                                        std::string(63 - evil.size(), 'f'));
  const std::string bad = evil + masked(Opcode::kText, "late");
  for (std::size_t piece : pieces()) {
    SCOPED_TRACE(piece);
    const LwsRun run = run_lws(kUpgradeHead + frames + bad, piece, kUpgradeHead.size());
    EXPECT_TRUE(run.blocked);
    EXPECT_EQ(run.reports.size(), 1u);
    // lws got the head and the masked frames, and nothing past the unmasked frame's first byte.
    EXPECT_GE(run.got.size(), kUpgradeHead.size() + frames.size());
    EXPECT_LE(run.got.size(), kUpgradeHead.size() + frames.size() + 1);
    EXPECT_EQ(run.got.substr(0, kUpgradeHead.size() + frames.size()), kUpgradeHead + frames);
  }
}

TEST(MaskGuardTest, MaskedFramesAfterKeepAliveRequestsPass) {
  const std::string before =
      "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\nHEAD /x HTTP/1.1\r\nHost: h\r\nContent-Length: "
      "0\r\n\r\n";
  const std::string frames = masked_plain(Opcode::kText, "GET / HTTP/1.1\r\n\r\n") +
                             masked_plain(Opcode::kBinary, std::string(70000, 'z') + "\r\n\r\n") +
                             masked(Opcode::kBinary, std::string(300, 'y')) +
                             masked(Opcode::kClose, std::string("\x03\xe8", 2));
  for (std::size_t piece : pieces()) {
    SCOPED_TRACE(piece);
    const std::string stream = before + kUpgradeHead + frames;
    const LwsRun run = run_lws(stream, piece, before.size() + kUpgradeHead.size());
    EXPECT_FALSE(run.blocked);
    EXPECT_EQ(run.got, stream);
    const LwsRun bad =
        run_lws(stream + unmasked(Opcode::kText, "x"), piece, before.size() + kUpgradeHead.size());
    EXPECT_TRUE(bad.blocked);
    EXPECT_EQ(bad.got.substr(0, stream.size()), stream);
  }
}

TEST(MaskGuardTest, AnUpgradeAfterARefusedOneIsFollowed) {
  const std::string refused = "GET /nowhere HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n";
  const std::string stream =
      refused + kUpgradeHead + masked(Opcode::kText, "\r\n\r\n") + unmasked(Opcode::kText, "x");
  for (std::size_t piece : {1, 7, 64, 4096}) {
    SCOPED_TRACE(piece);
    const LwsRun run = run_lws(stream, piece, refused.size() + kUpgradeHead.size(), refused.size());
    EXPECT_TRUE(run.blocked);
    EXPECT_EQ(run.reports.size(), 1u);
  }
}

TEST(MaskGuardTest, AnUpgradeWhereTheStreamIsNotFollowedIsAViolation) {
  // A POST without Content-Length: lws 4.1.6 reads up to 100 MiB of body, so an upgrade after it
  // closes with 1002 even when its frames are masked.
  const std::string body = "POST /x HTTP/1.1\r\nHost: h\r\n\r\nabcd";
  const std::string stream = body + kUpgradeHead + masked(Opcode::kText, "ok");
  const LwsRun run = run_lws(stream, 4096, stream.size());
  EXPECT_TRUE(run.blocked);
  EXPECT_EQ(run.reports.size(), 1u);
}

// A buffer handed to lws at once (the reverse proxy handing a connection back) may hold several
// heads: lws reports them one by one, and when one goes to the proxy, the ones lws still holds
// behind it go along (take_heads_ahead), or they would be lost with lws' connection.
TEST(MaskGuardTest, HeadsHandedAtOnceAreGivenOneByOneAndTheRestTogether) {
  constexpr int fd = 4001;
  RecordingSink sink;
  mask_guard::watch_http(fd, &sink);
  const std::string a = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string b = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string c = "GET /c?x=1 HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string d = "HEAD /d HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string handed = a + b + c + d;
  ASSERT_EQ(mask_guard::after_recv(fd, handed.data(), static_cast<long>(handed.size())),
            static_cast<long>(handed.size()));
  EXPECT_EQ(mask_guard::take_head_bytes(fd), a);
  EXPECT_EQ(mask_guard::take_head_bytes(fd), b);
  EXPECT_EQ(mask_guard::take_heads_ahead(fd), c + d);
  EXPECT_EQ(mask_guard::take_heads_ahead(fd), "") << "taken once";
  EXPECT_EQ(mask_guard::take_head_bytes(fd), "");
  mask_guard::forget(fd);
  EXPECT_EQ(mask_guard::take_heads_ahead(fd), "") << "an unwatched descriptor holds nothing";

  // Past the heads it keeps, the guard cannot tell which one lws reports next: it gives none
  // (rather than a wrong one) and follows no more.
  mask_guard::watch_http(fd, &sink);
  std::string many;
  for (std::size_t i = 0; i <= mask_guard::kMaxHeadsAhead; ++i) many += a;
  mask_guard::after_recv(fd, many.data(), static_cast<long>(many.size()));
  EXPECT_EQ(mask_guard::take_head_bytes(fd), "");
  std::string upgrade = kUpgradeHead;
  mask_guard::after_recv(fd, upgrade.data(), static_cast<long>(upgrade.size()));
  mask_guard::start_websocket(fd);
  EXPECT_TRUE(mask_guard::blocked(fd)) << "an upgrade after heads not followed";
  mask_guard::forget(fd);
}

// What lws may hold beyond whole heads the guard kept cannot be taken along: the proxy must not
// take the connection over then (nullopt). The body of the head just reported is still in the
// socket, and an upgrade head once reported is the one taken over: nothing lies beyond those.
TEST(MaskGuardTest, TellsWhenLwsMayHoldMoreThanWholeHeads) {
  constexpr int fd = 4002;
  RecordingSink sink;
  const std::string get = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string post = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n";
  const auto ahead_after = [&](std::string handed, bool upgrade_reported = false) {
    mask_guard::watch_http(fd, &sink);
    mask_guard::after_recv(fd, handed.data(), static_cast<long>(handed.size()));
    mask_guard::take_head_bytes(fd);
    if (upgrade_reported) mask_guard::take_request_bytes(fd);
    auto ahead = mask_guard::take_heads_ahead(fd);
    mask_guard::forget(fd);
    return ahead;
  };
  EXPECT_EQ(ahead_after(post), "") << "its body is still in the socket";
  EXPECT_EQ(ahead_after(post + "ab"), std::nullopt) << "lws holds part of the body";
  EXPECT_EQ(ahead_after(get + post), std::nullopt) << "a body behind a head ahead";
  EXPECT_EQ(ahead_after(get + "GET /b HT"), std::nullopt) << "part of a head";
  EXPECT_EQ(ahead_after(get + kUpgradeHead), std::nullopt) << "an upgrade head ahead";
  EXPECT_EQ(ahead_after(get + "POST /q HTTP/1.1\r\nHost: h\r\n\r\nxy"), std::nullopt)
      << "bytes the guard no longer follows";
  EXPECT_EQ(ahead_after(kUpgradeHead, true), "") << "the upgrade taken over";
}

// A body of a known length is followed, and no read goes past its end: lws 4.1.6 never finds a
// request behind a body in its own buffer (it loops forever on one that has a body).
TEST(MaskGuardTest, ReadsEndWhereABodyEndsAndFollowingGoesOn) {
  const std::string first = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd";
  const std::string second = "PUT /b HTTP/1.1\r\nHost: h\r\ncontent-length: 2, 2\r\n\r\nxy";
  const std::string stream = first + second + kUpgradeHead + masked(Opcode::kText, "ok");
  for (std::size_t piece : {1, 5, 64, 4096}) {
    SCOPED_TRACE(piece);
    constexpr int fd = 4001;
    RecordingSink sink;
    Source source{stream, 0, piece};
    g_source = &source;
    mask_guard::watch_http(fd, &sink);
    std::size_t got = 0;
    char buffer[4096];
    while (source.off < stream.size()) {
      const ssize_t n = mask_guard::guarded_recv(fd, buffer, sizeof buffer, 0, fake_recv);
      ASSERT_NE(n, 0);
      if (n < 0) continue;  // (held back by the head filter until its line goes on)
      // No read crosses the end of a body.
      for (std::size_t end : {first.size(), first.size() + second.size()}) {
        EXPECT_FALSE(got < end && got + static_cast<std::size_t>(n) > end) << got << "+" << n;
      }
      got += static_cast<std::size_t>(n);
      if (got == stream.size() - masked(Opcode::kText, "ok").size()) {
        mask_guard::start_websocket(fd);  // the upgrade after the bodies is followed
      }
    }
    EXPECT_FALSE(mask_guard::blocked(fd));
    EXPECT_TRUE(sink.fds.empty());
    mask_guard::forget(fd);
    g_source = nullptr;
  }
}

// A connection the reverse proxy hands back: the bytes it read reach lws first, through the
// guard as if from the socket (no read past a body's end, one head at a time), then the socket's
// own; each read that leaves some tells the sink, since no POLLIN comes for them.
TEST(MaskGuardTest, ReplayedBytesComeFirstAndAreFollowedAsTheSockets) {
  const std::string first = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd";
  const std::string second = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string third = "GET /c HTTP/1.1\r\nHost: h\r\n\r\n";
  // The replay ends inside the second head: the socket has the rest.
  const std::string replayed = first + second.substr(0, 10);
  const std::string socket = second.substr(10) + third;
  constexpr int fd = 4002;
  RecordingSink sink;
  Source source{socket, 0, 4096};
  g_source = &source;
  mask_guard::watch_http(fd, &sink);
  mask_guard::replay_first(fd, replayed);
  EXPECT_TRUE(mask_guard::replay_pending(fd));
  std::vector<std::string> reads;
  char buffer[4096];
  while (source.off < socket.size()) {
    const ssize_t n = mask_guard::guarded_recv(fd, buffer, sizeof buffer, 0, fake_recv);
    ASSERT_NE(n, 0);
    if (n > 0) reads.emplace_back(buffer, static_cast<std::size_t>(n));
  }
  std::string got;
  for (const std::string& r : reads) got += r;
  EXPECT_EQ(got, first + second + third);
  ASSERT_GE(reads.size(), 3u);
  EXPECT_EQ(reads[0], first.substr(0, first.size() - 4)) << "the head alone first";
  EXPECT_EQ(reads[1], "abcd") << "then the body, and no further";
  EXPECT_FALSE(mask_guard::replay_pending(fd));
  EXPECT_EQ(sink.waiting, (std::vector<int>{fd, fd})) << "told after each read that left some";
  EXPECT_TRUE(sink.fds.empty());
  mask_guard::forget(fd);

  // What the guard has not given lws yet goes along when the proxy takes the connection over.
  mask_guard::watch_http(fd, &sink);
  mask_guard::replay_first(fd, second + third);
  ASSERT_GT(mask_guard::guarded_recv(fd, buffer, sizeof buffer, 0, fake_recv), 0);
  EXPECT_EQ(mask_guard::take_head_bytes(fd), second);
  EXPECT_EQ(mask_guard::take_heads_ahead(fd), third);
  EXPECT_FALSE(mask_guard::replay_pending(fd));
  mask_guard::forget(fd);
  g_source = nullptr;
}

TEST(MaskGuardTest, ABearerSplitAcrossReadsIsTakenOut) {
  const std::string token(6000, 'T');
  std::string head = kUpgradeHead;
  head.insert(head.size() - 2, "Sec-WebSocket-Protocol: bearer." + token + ", chat\r\n");
  std::string expected = kUpgradeHead;
  expected.insert(expected.size() - 2, "Sec-WebSocket-Protocol:chat\r\n");
  for (std::size_t piece : {1, 2, 29, 30, 31, 1000, 4096}) {
    SCOPED_TRACE(piece);
    RecordingSink sink;
    Source source{head + masked(Opcode::kText, "hi"), 0, piece};
    g_source = &source;
    mask_guard::watch_http(4001, &sink);
    std::string got;
    char buffer[4096];
    bool confirmed = false;
    while (source.off < source.stream.size()) {
      const ssize_t n = mask_guard::guarded_recv(4001, buffer, sizeof buffer, 0, fake_recv);
      if (n > 0) got.append(buffer, static_cast<std::size_t>(n));
      if (!confirmed && got.size() >= expected.size()) {
        // What the server does while lws handles the read that completed the head.
        confirmed = true;
        bool only_bearer = true;
        const auto taken = mask_guard::take_bearer_token(4001, only_bearer);
        EXPECT_TRUE(taken == token);
        EXPECT_FALSE(only_bearer);
        EXPECT_EQ(mask_guard::take_request_bytes(4001), got);  // what a held upgrade replays
        mask_guard::start_websocket(4001);
      }
    }
    EXPECT_TRUE(confirmed);
    EXPECT_EQ(got.substr(0, expected.size()), expected);
    EXPECT_FALSE(mask_guard::blocked(4001));
    mask_guard::forget(4001);
    g_source = nullptr;
  }
}

// Through the real, interposed recv() on a socket pair.
std::string answer_to(const std::string& request) {
  int fds[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  RecordingSink sink;
  mask_guard::watch_http(fds[0], &sink);
  EXPECT_EQ(::send(fds[1], request.data(), request.size(), 0),
            static_cast<ssize_t>(request.size()));
  char buffer[4096];
  std::string got;
  for (int i = 0; i < 100; ++i) {
    const ssize_t n = ::recv(fds[0], buffer, sizeof buffer, 0);
    if (n > 0) got.append(buffer, static_cast<std::size_t>(n));
    if (n < 0 && errno == EAGAIN) break;
  }
  std::string answer;
  while (true) {
    const ssize_t n = ::recv(fds[1], buffer, sizeof buffer, 0);
    if (n <= 0) break;
    answer.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fds[1]);
  EXPECT_EQ(::recv(fds[0], buffer, sizeof buffer, 0), 0);  // the client left: lws sees the end
  mask_guard::forget(fds[0]);
  ::close(fds[0]);
  return answer;
}

TEST(MaskGuardTest, AnswersAnOverLongHeadWith431) {
  const std::string answer =
      answer_to("GET /x?token=" + std::string(20 * 1024, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n")) << answer;
  EXPECT_NE(answer.find("Connection: close"), std::string::npos);
}

TEST(MaskGuardTest, AnswersAMalformedHeadWith400) {
  const std::string answer = answer_to("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n");
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 400 Bad Request\r\n")) << answer;
}

}  // namespace
}  // namespace wsbridge
