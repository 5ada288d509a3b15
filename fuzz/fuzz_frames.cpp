// The byte-level guards below libwebsockets: FrameMaskScanner (unmasked client frames),
// RequestHeadFilter (request heads as the recv() hook follows them) and
// extract_bearer_subprotocol (bearer.<token> taken out of Sec-WebSocket-Protocol in place).
//
// Checked:
// - FrameMaskScanner fed the whole input at once and fed it in chunks (sizes 0..31 cycled from the
//   input's first bytes) agree on whether a frame was refused (unmasked, a control frame over
//   125 bytes, a bad close frame); the bytes let through add up to the same count, except that
//   what came of the refused frame in chunks before the one where it was found had already been
//   let through (one byte for an unmasked frame whose first header byte ended a chunk; up to the
//   whole frame but its last byte for a close frame, checked at its end); with no violation every
//   byte is let through; after a violation feed returns 0;
// - extract_bearer_subprotocol on an exactly-sized copy of the input (ASan sees any write past
//   it) keeps len <= the original; when it returns a token, the token is non-empty and has no ','
//   or CRLF, and when another subprotocol was kept, a second extraction finds no bearer any more;
//   nullopt leaves buffer and length unchanged;
// - RequestHeadFilter fed at once and in chunks (the same sizes) ends with the same result, the
//   same bytes put out and the same summary; no call puts out more than it held plus what it
//   took, and it never holds more than kMaxHeldBytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "handshake/bearer_subprotocol.hpp"
#include "recv_hook/mask_guard.hpp"

namespace {

using wsbridge::extract_bearer_subprotocol;
using wsbridge::FrameMaskScanner;
using wsbridge::RequestHeadFilter;

[[noreturn]] void fail(const char* what) {
  wsbridge_fuzz::fail("fuzz_frames", what);
}

void check_scanner(const std::uint8_t* input, std::size_t size) {
  // Both runs rewrite in place (RSV1 off compressed messages): each gets its own copy. The mode
  // (shared permessage-deflate agreed or not) comes from the input's last byte.
  const bool compressed = size > 0 && (input[size - 1] & 1) != 0;
  std::vector<std::uint8_t> at_once(input, input + size);
  std::vector<std::uint8_t> in_chunks(input, input + size);
  const std::uint8_t* data = input;
  FrameMaskScanner once;
  if (compressed) once.accept_compressed();
  const std::size_t once_result = once.feed(at_once.data(), size);
  if (once.violated() ? once_result >= size : once_result != size) {
    fail("feeding at once: wrong count");
  }

  // Chunk sizes from the first (up to 8) bytes: size = byte % 32, 0 included.
  std::vector<std::size_t> sizes;
  if (size > 0) {
    const std::size_t n = data[0] % 8 + 1;
    for (std::size_t i = 1; i <= n && i < size; ++i) sizes.push_back(data[i] % 32);
  }
  if (sizes.empty() ||
      std::all_of(sizes.begin(), sizes.end(), [](std::size_t s) { return s == 0; })) {
    sizes = {1};
  }

  FrameMaskScanner chunked;
  if (compressed) chunked.accept_compressed();
  std::size_t passed = 0;
  std::size_t offset = 0;
  std::size_t found_in = 0;  // where the chunk in which the violation was found began
  std::size_t k = 0;
  do {  // at least once, so that an empty input is fed too
    const std::size_t len = std::min(sizes[k++ % sizes.size()], size - offset);
    const bool was_violated = chunked.violated();
    const std::size_t got = chunked.feed(in_chunks.data() + offset, len);
    if (got > len) fail("feed returned more than it was given");
    if (was_violated && got != 0) fail("feed after a violation returned non-zero");
    if (!chunked.violated() && got != len) fail("feed without violation held bytes back");
    if (!was_violated && chunked.violated()) found_in = offset;
    passed += got;
    offset += len;
  } while (offset < size);
  if (chunked.violated() != once.violated()) fail("chunked and at-once disagree on the violation");
  if (chunked.queued() != once.queued()) fail("chunked and at-once queued different messages");
  if (!compressed && once.queued() != 0) fail("messages queued without compression agreed");
  // The same bytes rewritten, and only RSV1 bits (0x40) cleared, never set.
  for (std::size_t i = 0; i < size; ++i) {
    if (i < once_result && at_once[i] != in_chunks[i])
      fail("chunked and at-once rewrote differently");
    if ((at_once[i] | 0x40) != (input[i] | 0x40) || (at_once[i] & ~input[i]) != 0) {
      fail("a byte was changed beyond clearing RSV1");
    }
  }
  while (once.queued() > 0) (void)once.take_compressed();
  if (once.take_compressed()) fail("take_compressed with nothing queued said compressed");
  if (!once.violated()) {
    if (passed != size) fail("no violation, but not every byte passed");
  } else {
    // The chunks before the one where the refused frame was found passed whole; in that one,
    // the bytes before the frame when it began there.
    const std::size_t expected = std::max(once_result, found_in);
    if (passed != expected) fail("chunked count of bytes let through differs from at-once");
  }
}

void check_bearer(const std::uint8_t* data, std::size_t size) {
  // Exactly sized heap copy: a write past the end is an ASan report.
  std::unique_ptr<char[]> buffer(new char[size == 0 ? 1 : size]);
  if (size > 0) std::memcpy(buffer.get(), data, size);
  std::size_t len = size;
  const auto found = extract_bearer_subprotocol(buffer.get(), len);
  if (len > size) fail("extract_bearer_subprotocol grew the length");
  if (!found) {
    if (len != size || (size > 0 && std::memcmp(buffer.get(), data, size) != 0)) {
      fail("nullopt, but the buffer changed");
    }
    return;
  }
  if (found->token.empty()) fail("empty token returned");
  if (found->token.find(',') != std::string::npos) fail("token holds a ','");
  if (found->token.find("\r\n") != std::string::npos) fail("token holds CRLF");
  if (!found->only_bearer) {
    std::size_t again = len;
    if (extract_bearer_subprotocol(buffer.get(), again)) {
      fail("the rewritten header line still holds a bearer token");
    }
  }
}

struct HeadRun {
  RequestHeadFilter::Result result = RequestHeadFilter::Result::kMore;
  std::string out;
  std::size_t consumed = 0;
  wsbridge::HeadSummary summary;
};

HeadRun run_head(const std::uint8_t* data, std::size_t size, std::size_t chunk) {
  RequestHeadFilter filter(4096, 8192);
  HeadRun run;
  const char* bytes = reinterpret_cast<const char*>(data);
  while (run.consumed < size && run.result == RequestHeadFilter::Result::kMore) {
    const std::size_t n = std::min(chunk, size - run.consumed);
    const std::size_t held = filter.held();
    const std::size_t before = run.out.size();
    std::size_t used = 0;
    run.result = filter.feed(bytes + run.consumed, n, &run.out, used);
    if (used > n || (run.result == RequestHeadFilter::Result::kMore && used != n)) {
      fail("the head filter took a wrong count");
    }
    if (run.out.size() - before > held + used) fail("the head filter put out more than it had");
    if (filter.held() > RequestHeadFilter::kMaxHeldBytes) fail("the head filter held too much");
    run.consumed += used;
  }
  run.summary = filter.summary();
  return run;
}

void check_head_filter(const std::uint8_t* data, std::size_t size) {
  const HeadRun once = run_head(data, size, size == 0 ? 1 : size);
  const std::size_t chunk = size > 0 ? data[size - 1] % 17 + 1 : 1;
  const HeadRun split = run_head(data, size, chunk);
  if (once.result != split.result || once.consumed != split.consumed) {
    fail("the head filter's result depends on how the bytes are split");
  }
  if (once.result == RequestHeadFilter::Result::kEnd &&
      (once.out != split.out || once.summary.upgrade != split.summary.upgrade ||
       once.summary.has_body != split.summary.has_body ||
       once.summary.bearer.has_value() != split.summary.bearer.has_value() ||
       (once.summary.bearer && once.summary.bearer->token != split.summary.bearer->token))) {
    fail("the head filter's output depends on how the bytes are split");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  check_scanner(data, size);
  check_bearer(data, size);
  check_head_filter(data, size);
  return 0;
}
