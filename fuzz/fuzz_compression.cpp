// Shared permessage-deflate (proxy/src/compression/): compressed client frames and offers.
//
// Checked:
// - inflate_message on the input as a compressed message, with a limit from its first bytes:
//   never more output than the limit; kTooLarge exactly when a bigger limit gives more than it;
//   kOk output is what a second call gives (the thread's inflater is reset between messages);
// - deflate_message of the input inflates back to the input (when it shrank at all), for a
//   window and level from the input;
// - deflate_offer::negotiate on the input as a Sec-WebSocket-Extensions header: an agreement
//   always names permessage-deflate with both no_context_takeover parameters and a window in
//   8..15 no larger than ours.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "compression/deflate_offer.hpp"
#include "compression/shared_deflate.hpp"
#include "fuzz_check.hpp"

namespace {

using wsbridge::kFrameHeadroom;
using wsbridge::shared_deflate::InflateStatus;

[[noreturn]] void fail(const char* what, std::string_view input) {
  wsbridge_fuzz::fail("fuzz_compression", what, {input});
}

void check_inflate(std::string_view input) {
  const std::size_t limit =
      input.empty() ? 0 : (static_cast<unsigned char>(input[0]) * 257u) % 70000;
  const auto r = wsbridge::shared_deflate::inflate_message(input, limit);
  if (r.status == InflateStatus::kOk) {
    if (r.bytes.size() < kFrameHeadroom || r.bytes.size() - kFrameHeadroom > limit) {
      fail("inflated past the limit", input);
    }
    const auto again = wsbridge::shared_deflate::inflate_message(input, limit);
    if (again.status != InflateStatus::kOk || again.bytes != r.bytes) {
      fail("the same message inflated differently the second time", input);
    }
  } else if (r.status == InflateStatus::kTooLarge) {
    if (!r.bytes.empty()) fail("kTooLarge kept output", input);
    const auto bigger = wsbridge::shared_deflate::inflate_message(input, limit + 70000);
    if (bigger.status == InflateStatus::kOk && bigger.bytes.size() - kFrameHeadroom <= limit) {
      fail("kTooLarge for a message within the limit", input);
    }
  }
}

void check_round_trip(std::string_view input) {
  const int bits = input.empty() ? 15 : 9 + static_cast<unsigned char>(input.back()) % 7;
  const int level = input.size() < 2 ? 1 : 1 + static_cast<unsigned char>(input[1]) % 9;
  const auto compressed = wsbridge::shared_deflate::deflate_message(input, bits, level);
  if (!compressed) return;  // it would not shrink
  if (compressed->size() - kFrameHeadroom >= input.size()) fail("kept a variant that grew", input);
  const auto back = wsbridge::shared_deflate::inflate_message(
      std::string_view(*compressed).substr(kFrameHeadroom), input.size());
  if (back.status != InflateStatus::kOk ||
      std::string_view(back.bytes).substr(kFrameHeadroom) != input) {
    fail("deflate then inflate did not give the input back", input);
  }
}

void check_offer(std::string_view input) {
  const int ours = input.empty() ? 15 : 9 + static_cast<unsigned char>(input[0]) % 7;
  const auto a = wsbridge::deflate_offer::negotiate(input, ours);
  if (!a) return;
  if (a->server_window_bits < 8 || a->server_window_bits > ours) fail("window out of range", input);
  if (a->response.rfind("permessage-deflate; server_no_context_takeover; "
                        "client_no_context_takeover",
                        0) != 0) {
    fail("response without both no_context_takeover parameters", input);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_inflate(input);
  check_round_trip(input);
  check_offer(input);
  return 0;
}
