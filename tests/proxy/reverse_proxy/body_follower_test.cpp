// Where a relayed body ends (proxy/src/reverse_proxy/body_follower.cpp): lengths, chunked framing
// (RFC 9112 7.1) wherever the reads split it, and the bytes that follow it left alone.
#include "reverse_proxy/body_follower.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace wsbridge::reverse_proxy {
namespace {

// What following `bytes` in pieces came to: bytes used, and the state at the end.
struct Outcome {
  std::size_t used = 0;
  bool done = false;
  bool error = false;
  std::uint64_t payload = 0;
  bool operator==(const Outcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  return os << "{used " << o.used << ", done " << o.done << ", error " << o.error << ", payload "
            << o.payload << "}";
}

// Feeds `bytes` in pieces of the given sizes (the rest at once after them), as a connection's
// reads would, stopping where the body ends or breaks.
Outcome follow(BodyFraming framing, std::string_view bytes, const std::vector<std::size_t>& pieces,
               std::uint64_t length = 0) {
  BodyFollower f(framing, length);
  Outcome o;
  std::size_t at = 0;
  std::size_t piece = 0;
  while (true) {
    const std::size_t n =
        piece < pieces.size() ? std::min(pieces[piece++], bytes.size() - at) : bytes.size() - at;
    const auto step = f.feed(bytes.data() + at, n);
    EXPECT_LE(step.used, n);
    if (!step.done && !step.error) {
      EXPECT_EQ(step.used, n) << "a body stops short only at its end";
    }
    o.used += step.used;
    at += n;
    if (step.done || step.error) {
      o.done = step.done;
      o.error = step.error;
      EXPECT_EQ(step.done, f.done());
      EXPECT_EQ(step.error, !f.error().empty());
      break;
    }
    if (at == bytes.size()) break;
  }
  o.payload = f.payload_bytes();
  return o;
}

Outcome whole(BodyFraming framing, std::string_view bytes, std::uint64_t length = 0) {
  return follow(framing, bytes, {}, length);
}

Outcome bytewise(BodyFraming framing, std::string_view bytes, std::uint64_t length = 0) {
  return follow(framing, bytes, std::vector<std::size_t>(bytes.size(), 1), length);
}

// Every way of cutting `bytes` in two, byte by byte, and random cuts: all must agree with one feed.
void expect_split_invariant(BodyFraming framing, std::string_view bytes, std::uint64_t length = 0) {
  const Outcome reference = whole(framing, bytes, length);
  EXPECT_EQ(bytewise(framing, bytes, length), reference) << bytes;
  for (std::size_t cut = 0; cut <= bytes.size(); ++cut) {
    EXPECT_EQ(follow(framing, bytes, {cut}, length), reference) << "cut at " << cut;
  }
  std::mt19937 rng(1234);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::size_t> pieces;
    for (std::size_t total = 0; total < bytes.size();) {
      pieces.push_back(std::uniform_int_distribution<std::size_t>(0, 9)(rng));
      total += pieces.back();
    }
    EXPECT_EQ(follow(framing, bytes, pieces, length), reference) << "round " << round;
  }
}

constexpr std::string_view kNext = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";

TEST(BodyFollowerTest, NoBodyIsDoneAtOnce) {
  BodyFollower f;
  EXPECT_TRUE(f.done());
  const auto step = f.feed(kNext.data(), kNext.size());
  EXPECT_EQ(step.used, 0u);
  EXPECT_TRUE(step.done);
  EXPECT_FALSE(step.error);
  EXPECT_TRUE(BodyFollower(BodyFraming::kLength, 0).done());
  EXPECT_EQ(whole(BodyFraming::kLength, kNext, 0), (Outcome{0, true, false, 0}));
}

TEST(BodyFollowerTest, ContentLengthEndsExactlyAtItsLength) {
  const std::string bytes = "hello" + std::string(kNext);
  EXPECT_EQ(whole(BodyFraming::kLength, bytes, 5), (Outcome{5, true, false, 5}));
  expect_split_invariant(BodyFraming::kLength, bytes, 5);
  // Not yet: everything is the body's.
  EXPECT_EQ(whole(BodyFraming::kLength, "hel", 5), (Outcome{3, false, false, 3}));
  BodyFollower f(BodyFraming::kLength, 5);
  EXPECT_EQ(f.feed("hel", 3).used, 3u);
  const auto step = f.feed("loGET", 5);
  EXPECT_EQ(step.used, 2u);
  EXPECT_TRUE(step.done);
  // Once done, nothing more is the body's.
  const auto after = f.feed("GET", 3);
  EXPECT_EQ(after.used, 0u);
  EXPECT_TRUE(after.done);
  EXPECT_EQ(f.payload_bytes(), 5u);
  // Lengths beyond what memory holds are only counted.
  BodyFollower big(BodyFraming::kLength, 18446744073709551615ull);
  EXPECT_EQ(big.feed(bytes.data(), bytes.size()).used, bytes.size());
  EXPECT_FALSE(big.done());
}

TEST(BodyFollowerTest, UntilCloseTakesEverythingAndNeverEnds) {
  BodyFollower f(BodyFraming::kUntilClose);
  EXPECT_FALSE(f.done());
  for (int i = 0; i < 3; ++i) {
    const auto step = f.feed(kNext.data(), kNext.size());
    EXPECT_EQ(step.used, kNext.size());
    EXPECT_FALSE(step.done);
    EXPECT_FALSE(step.error);
  }
  EXPECT_EQ(f.payload_bytes(), 3 * kNext.size());
  EXPECT_FALSE(f.feed("", 0).done);
}

TEST(BodyFollowerTest, ChunkedEndsAfterTheLastChunksBlankLine) {
  const std::string body = "5\r\nhello\r\n0\r\n\r\n";
  const std::string bytes = body + std::string(kNext);
  EXPECT_EQ(whole(BodyFraming::kChunked, bytes), (Outcome{body.size(), true, false, 5}));
  expect_split_invariant(BodyFraming::kChunked, bytes);
  // The body alone, then the next request: nothing of it is used.
  BodyFollower f(BodyFraming::kChunked);
  EXPECT_EQ(f.feed(body.data(), body.size()).used, body.size());
  EXPECT_TRUE(f.done());
  EXPECT_EQ(f.feed(kNext.data(), kNext.size()).used, 0u);
  // Short of the last CRLF it is not done, and every byte so far is the body's.
  for (std::size_t n = 0; n < body.size(); ++n) {
    EXPECT_EQ(whole(BodyFraming::kChunked, std::string_view(body).substr(0, n)),
              (Outcome{n, false, false, std::min<std::uint64_t>(n > 3 ? n - 3 : 0, 5)}))
        << n;
  }
}

TEST(BodyFollowerTest, ChunkedWithExtensionsTrailersAndManyChunks) {
  const std::string body =
      "4;name=value;flag\r\nWiki\r\n"
      "5 ; q=\"a \\\"quoted\\\" ;value\"\r\npedia\r\n"
      "E\t;x=y\r\n in\r\n\r\nchunks.\r\n"
      "00a\r\n0123456789\r\n"
      "000;last=yes\r\n"
      "Expires: Wed, 21 Oct 2015 07:28:00 GMT\r\nX-Trailer:\r\n\r\n";
  const std::string bytes = body + "\r\n" + std::string(kNext);
  EXPECT_EQ(whole(BodyFraming::kChunked, bytes),
            (Outcome{body.size(), true, false, 4 + 5 + 14 + 10}));
  expect_split_invariant(BodyFraming::kChunked, bytes);
  // Upper- and lower-case hex, 16 digits at most.
  EXPECT_EQ(whole(BodyFraming::kChunked, "A\r\n0123456789\r\n0\r\n\r\n").payload, 10u);
  const auto big = whole(BodyFraming::kChunked, "ffffFFFFffffFFFF\r\nxyz");
  EXPECT_EQ(big, (Outcome{21, false, false, 3}));
}

TEST(BodyFollowerTest, RefusesMalformedChunkFraming) {
  const std::vector<std::string> bad = {
      "5\nhello\r\n0\r\n\r\n",     // bare LF after the size
      "5\r\nhello\n0\r\n\r\n",     // bare LF after the data
      "5\r\nhelloX\r\n0\r\n\r\n",  // data longer than its size
      "5\r\nhello\r\r\n",          // CR, then not LF
      "5\r\nhello\r\n0\r\n\n",     // bare LF ending the trailers
      "5\r\nhello\r\n0\n\r\n",     // bare LF after the last chunk
      "5\r\nhello\r\n0\r\n\rX",    // CR without LF at the end
      "\r\n",                      // no size
      "g\r\n",                     // not hex
      "-5\r\n",                    //
      "+5\r\n",                    //
      "0x5\r\n",                   // hex with a prefix
      " 5\r\n",                    // whitespace before the size
      "5 \r\n",                    // whitespace without an extension
      "5;\r\n",                    // an extension without a name
      "5;=x\r\n",                  //
      "5;a=\r\n",                  // a name with '=' but no value
      "5;a=\"x\r\n",               // unterminated quoted string
      "5;a b\r\n",                 //
      "5;a=b c\r\n",               //
      "5\r;a\r\n",                 // a bare CR inside the line
      "00000000000000001\r\n",     // 17 digits
      "10000000000000000\r\n",     // over 64 bits
      "0\r\n folded: x\r\n\r\n",   // trailer obs-fold
      "0\r\nno colon\r\n\r\n",     //
      "0\r\nX-A : b\r\n\r\n",      // whitespace before the colon
      "0\r\nX-A: b\x01\r\n\r\n",   // a control character in a trailer
      "0\r\nX-A: b\rc\r\n\r\n",    //
  };
  for (const auto& bytes : bad) {
    const Outcome o = whole(BodyFraming::kChunked, bytes);
    EXPECT_TRUE(o.error) << bytes;
    EXPECT_FALSE(o.done) << bytes;
    EXPECT_TRUE(bytewise(BodyFraming::kChunked, bytes).error) << bytes;
    expect_split_invariant(BodyFraming::kChunked, bytes);
  }
}

TEST(BodyFollowerTest, ErrorsStickAndSayWhy) {
  BodyFollower f(BodyFraming::kChunked);
  const auto step = f.feed("5\nhello", 7);
  EXPECT_TRUE(step.error);
  EXPECT_FALSE(step.done);
  EXPECT_NE(f.error().find("bare LF"), std::string::npos) << f.error();
  EXPECT_TRUE(f.feed("0\r\n\r\n", 5).error);
  EXPECT_EQ(f.feed("0\r\n\r\n", 5).used, 0u);
  EXPECT_FALSE(f.done());
}

TEST(BodyFollowerTest, BoundsSizeLinesAndTrailers) {
  // A size line may be 4 KiB with its CRLF: extensions are not a way to make the proxy buffer.
  std::string line = "5;x=";
  line += std::string(4096 - line.size() - 2, 'a');
  const std::string at_limit = line + "\r\nhello\r\n0\r\n\r\n";
  EXPECT_TRUE(whole(BodyFraming::kChunked, at_limit).done);
  EXPECT_TRUE(bytewise(BodyFraming::kChunked, at_limit).done);
  const std::string over = line + "a\r\nhello\r\n0\r\n\r\n";
  EXPECT_TRUE(whole(BodyFraming::kChunked, over).error);
  EXPECT_TRUE(bytewise(BodyFraming::kChunked, over).error);
  // A line that never ends fails once over the bound, not at the end of the input.
  const std::string endless(100000, '0');
  EXPECT_TRUE(whole(BodyFraming::kChunked, endless).error);

  // Trailers: 16 KiB in all, the final empty line included.
  std::string trailers;
  while (trailers.size() + 100 <= 16 * 1024 - 2)
    trailers += "X-T: " + std::string(93, 't') + "\r\n";
  trailers += "X-Last: " + std::string(16 * 1024 - 2 - trailers.size() - 10, 'l') + "\r\n";
  ASSERT_EQ(trailers.size() + 2, 16u * 1024);
  EXPECT_TRUE(whole(BodyFraming::kChunked, "0\r\n" + trailers + "\r\n").done);
  EXPECT_TRUE(whole(BodyFraming::kChunked, "0\r\nX-Extra: 1\r\n" + trailers + "\r\n").error);
  const std::string many(100000, 'x');
  EXPECT_TRUE(whole(BodyFraming::kChunked, "0\r\nX-A: " + many + "\r\n\r\n").error);
}

// A request's body on its way to a backend (guard_request): a chunk that takes the body past the
// limit is refused at its size line, none of whose bytes are counted as used; so are trailer
// fields. A probe sent "100000005" against a 16 MiB limit (5 bytes to a backend reading 32 bits
// of it, and a smuggled request after them) and "X-Wsbridge-User: admin" as a trailer, both
// relayed as they came.
TEST(BodyFollowerTest, ARequestsChunksAreBoundedAndItsTrailersRefused) {
  auto guarded = [](std::string_view bytes) {
    BodyFollower f(BodyFraming::kChunked);
    f.guard_request(16);
    const BodyFollower::Step step = f.feed(bytes.data(), bytes.size());
    return std::tuple(step.used, step.done, step.error, f.over_limit(), f.error());
  };
  EXPECT_EQ(guarded("8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n"),
            std::tuple(std::size_t{31}, true, false, false, std::string()));
  const auto [used, done, error, over, why] = guarded("8\r\n01234567\r\n100000005\r\nhello\r\n");
  EXPECT_EQ(used, 24u);  // up to the size line's end: the step is refused, nothing goes out
  EXPECT_FALSE(done);
  EXPECT_TRUE(error);
  EXPECT_TRUE(over);
  EXPECT_EQ(why, "a chunk that takes the body over 16 bytes");
  EXPECT_TRUE(std::get<3>(guarded("ffffffffffffffff\r\n")));
  EXPECT_TRUE(std::get<3>(guarded("10\r\n0123456789abcdef\r\n1\r\n")));
  const auto trailers = guarded("1\r\nx\r\n0\r\nX-Wsbridge-User: admin\r\n\r\n");
  EXPECT_TRUE(std::get<2>(trailers));
  EXPECT_FALSE(std::get<3>(trailers));
  EXPECT_EQ(std::get<4>(trailers), "trailer fields, which are not relayed");
  // Size lines go to the backend as they came: only the one spelling every reader agrees on.
  // A reader of 8 hex digits reads "000000001" as 0 (the body's end, and a smuggled request in
  // its data); readers end a quoted extension value at different bytes.
  const auto zeros = guarded("000000001\r\nx\r\n0\r\n\r\n");
  EXPECT_EQ(std::get<0>(zeros), 11u);
  EXPECT_TRUE(std::get<2>(zeros));
  EXPECT_FALSE(std::get<3>(zeros));
  EXPECT_EQ(std::get<4>(zeros), "a chunk size with a leading zero, which is not relayed");
  EXPECT_TRUE(std::get<2>(guarded("1\r\nx\r\n00\r\n\r\n")));
  const auto extension = guarded("1;a=\"b;c\"\r\nx\r\n0\r\n\r\n");
  EXPECT_TRUE(std::get<2>(extension));
  EXPECT_EQ(std::get<4>(extension), "a chunk extension, which is not relayed");
  EXPECT_EQ(std::get<4>(guarded("0;last\r\n\r\n")), "a chunk extension, which is not relayed");
  EXPECT_EQ(guarded("A\r\n0123456789\r\n0\r\n\r\n"),
            std::tuple(std::size_t{20}, true, false, false, std::string()));
  // Unguarded (a response's body) all pass as before.
  for (const std::string_view bytes : {"100000005\r\nhello", "000000001\r\nx", "1;a=\"b\"\r\nx"}) {
    BodyFollower response(BodyFraming::kChunked);
    EXPECT_FALSE(response.feed(bytes.data(), bytes.size()).error) << bytes;
  }
}

TEST(BodyFollowerTest, PayloadCountsChunkDataOnly) {
  std::string body;
  std::uint64_t expected = 0;
  for (std::size_t size : {1u, 16u, 255u, 4096u, 3u}) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "%zx;i=%zu\r\n", size, size);
    body += hex + std::string(size, 'd') + "\r\n";
    expected += size;
  }
  body += "0\r\n\r\n";
  const Outcome o = whole(BodyFraming::kChunked, body + "HTTP/1.1 200 OK\r\n");
  EXPECT_EQ(o, (Outcome{body.size(), true, false, expected}));
  EXPECT_EQ(bytewise(BodyFraming::kChunked, body), o);
}

// What a relay passes on of `bytes` cut at `cut` (LineHold over the follower's steps): the
// same at every cut, and never a malformed line. A probe saw a backend's "ffffffffffffffffff"
// size line reach the browser before the proxy closed the connection.
std::string relayed(std::string_view bytes, std::size_t cut) {
  BodyFollower f(BodyFraming::kChunked);
  LineHold hold;
  std::string out;
  for (std::string_view piece : {bytes.substr(0, cut), bytes.substr(cut)}) {
    const auto step = f.feed(piece.data(), piece.size());
    EXPECT_LE(step.line_tail, step.used);
    std::string first;
    const std::string_view rest = hold.pass(step, piece, first);
    out += first;
    out += rest;
    if (step.error || step.done) break;
  }
  return out;
}

TEST(BodyFollowerTest, ARelayPassesOnOnlyCompleteGoodLines) {
  struct Case {
    std::string bytes;
    std::string passed;  // what reaches the browser, at every cut
  };
  const std::string good = "5\r\nhello\r\n";
  const std::vector<Case> cases = {
      {good + "ffffffffffffffffff\r\nx", good},            // a size over 64 bits
      {good + "-1\r\n", good},                             // not hex
      {good + "5\nhello", good},                           // a bare LF
      {good + "5;a=\"x\r\n", good},                        // an unterminated extension
      {good + std::string(5000, 'a'), good},               // a line over its bound
      {"5\r\nhelloX\r\n", "5\r\nhello"},                   // no CRLF after the data: its byte
      {good + "0\r\nX-A: b\x01\r\n\r\n", good + "0\r\n"},  // a broken trailer
      {good + "0\r\nX-T: 1\r\n\r\n", good + "0\r\nX-T: 1\r\n\r\n"},  // all good: all of it
      {good + "A;ext=1\r\n0123456789\r\n0\r\n\r\n", good + "A;ext=1\r\n0123456789\r\n0\r\n\r\n"},
  };
  for (const auto& c : cases) {
    for (std::size_t cut = 0; cut <= c.bytes.size(); ++cut) {
      EXPECT_EQ(relayed(c.bytes, cut), c.passed) << c.bytes.substr(0, 40) << " cut at " << cut;
    }
  }
  // An unfinished line waits, and goes out with the input that completes it.
  BodyFollower f(BodyFraming::kChunked);
  LineHold hold;
  std::string first;
  auto step = f.feed("5\r\nhello\r\n1", 11);
  EXPECT_EQ(step.line_tail, 1u);
  EXPECT_EQ(hold.pass(step, "5\r\nhello\r\n1", first), "5\r\nhello\r\n");
  EXPECT_EQ(first, "");
  step = f.feed("0", 1);
  EXPECT_EQ(hold.pass(step, "0", first), "");
  EXPECT_EQ(hold.held(), 2u);
  step = f.feed("\r\n0123456789abcdef", 18);
  EXPECT_EQ(hold.pass(step, "\r\n0123456789abcdef", first), "\r\n0123456789abcdef");
  EXPECT_EQ(first, "10");
  EXPECT_EQ(hold.held(), 0u);
}

}  // namespace
}  // namespace wsbridge::reverse_proxy
