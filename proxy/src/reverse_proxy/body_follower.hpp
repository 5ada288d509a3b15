// Follows a message body through the bytes of a connection without changing them: the proxy
// forwards bodies verbatim, chunked or not, and only needs to know where each one ends (what
// follows is the next message) and how much data it carried (the body size limit). Chunk sizes,
// extensions and trailers are checked as RFC 9112 section 7.1 says; a malformed one is an error,
// never a guess. Pure: unit-tested and fuzzed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "reverse_proxy/request_head.hpp"

namespace wsbridge::reverse_proxy {

class BodyFollower {
 public:
  // kLength needs `length`; kNone is done at once; kUntilClose never is (the close ends it).
  explicit BodyFollower(BodyFraming framing = BodyFraming::kNone, std::uint64_t length = 0);

  struct Step {
    std::size_t used = 0;  // leading bytes of the input that belong to the body
    bool done = false;     // the body ended within them: what follows is not this body's
    bool error = false;    // malformed chunk framing (error() says how); stop using the connection
    // Of `used`, the trailing bytes of a chunk-size or trailer line not complete yet, or on an
    // error those of the line (or byte) that broke the framing. A relay that passes on only
    // lines known to be good holds them back until the line completes (their length is bounded
    // by the line bounds) and drops them on an error; equal to `used` when all of this input is
    // that line's.
    std::size_t line_tail = 0;
  };
  // Follows `len` more bytes.
  Step feed(const char* data, std::size_t len);

  // For a request's body, on its way to a backend: a chunk that would take the body past `max`
  // bytes is refused at its size line (over_limit()), before the line goes anywhere, where the
  // payload count alone would let a size line such as "100000005" through to a backend that
  // reads 32 bits of it; and trailer fields are refused, because backends that merge them into
  // the head (Apache's MergeTrailers, Tomcat's allowedTrailerHeaders) would take an identity
  // field there that the head's filter dropped. Size lines are relayed as they came, so only
  // the spelling every reader agrees on passes: hex digits without a leading zero and without
  // extensions (a reader of 8 hex digits reads "000000001" as 0, the end of the body;
  // readers end a quoted extension value differently). Browsers send nothing else.
  void guard_request(std::uint64_t max) {
    max_payload_ = max;
    guarded_ = true;
  }
  bool over_limit() const { return over_limit_; }

  bool done() const;
  // Body data so far: the bytes of the chunks for chunked bodies (framing not counted).
  std::uint64_t payload_bytes() const { return payload_; }
  const std::string& error() const { return error_; }

 private:
  enum class Phase : std::uint8_t {
    kData,         // kLength / kUntilClose data, or inside a chunk
    kSizeLine,     // a chunk-size line (with extensions) up to its CRLF
    kDataCrlf,     // the CRLF after a chunk's data
    kTrailerLine,  // a trailer field line, or the final blank line
    kDone,
  };
  Step fail(std::size_t used, std::string why);

  BodyFraming framing_;
  Phase phase_ = Phase::kData;
  std::uint64_t remaining_ = 0;  // kData: bytes left in the body or the chunk
  std::uint64_t payload_ = 0;
  std::string line_;  // the size or trailer line so far (bounded)
  std::size_t trailer_bytes_ = 0;
  bool after_cr_ = false;  // kDataCrlf: the CR was seen
  std::uint64_t max_payload_ = UINT64_MAX;
  bool guarded_ = false;  // a request's body (guard_request)
  bool over_limit_ = false;
  std::string error_;
};

// Holds back a relayed body's chunk-size and trailer lines until they complete
// (BodyFollower::Step::line_tail), so that only lines the follower found good are passed on: a
// backend's malformed line never reaches the browser, whose connection is closed instead.
class LineHold {
 public:
  // After `step` over `input`: appends to `first` the held bytes that go out now, and returns the
  // part of `input` that goes out after them (a view, not a copy). Held bytes of a line that
  // broke the framing are dropped.
  std::string_view pass(const BodyFollower::Step& step, std::string_view input, std::string& first);
  std::size_t held() const { return held_.size(); }

 private:
  std::string held_;
};

}  // namespace wsbridge::reverse_proxy
