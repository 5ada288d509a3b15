// The HTTP fallbacks' body parser (proxy/src/fallback/records.hpp): a client's POST body, or a
// poll answer, as anyone may send it.
//
// Checked:
// - parse_body never crashes or throws; an error always comes with a message;
// - an accepted body has at most max_records records, each within max_record_bytes, each a view
//   into the input, in order and not overlapping, of a kind the limits allow;
// - re-encoding what was parsed (append_first_line, append_record) parses back to the same
//   first number and records (the encoder and the parser agree).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fallback/records.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace wsbridge::fallback;

[[noreturn]] void fail(const char* what, std::string_view detail) {
  wsbridge_fuzz::fail("fuzz_fallback_body", what, {detail});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // Byte 0 picks the limits: small ones reach the limit paths, and control records come and go.
  const BodyLimits limits{static_cast<std::size_t>(data[0] & 0x3f) * 16,
                          static_cast<std::size_t>((data[0] >> 6) & 1) * 8 + 2,
                          (data[0] & 0x80) != 0};
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  BodyError error = BodyError::kNone;
  std::string message;
  const auto parsed = parse_body(body, limits, error, message);
  if (!parsed) {
    if (error == BodyError::kNone || message.empty())
      fail("an error without its kind or message", body);
    return 0;
  }
  if (parsed->records.size() > limits.max_records) fail("more records than the limit", body);
  const char* last_end = body.data();
  for (const Record& r : parsed->records) {
    if (r.payload.size() > limits.max_record_bytes) fail("a record over the limit", body);
    if (r.kind != 't' && r.kind != 'b' && !(r.kind == 'c' && limits.control_allowed)) {
      fail("a record of a kind not allowed", body);
    }
    if (r.payload.data() < last_end ||
        r.payload.data() + r.payload.size() > body.data() + body.size()) {
      fail("a record outside the input or out of order", body);
    }
    last_end = r.payload.data() + r.payload.size();
  }
  std::string encoded;
  append_first_line(encoded, parsed->first);
  for (const Record& r : parsed->records) append_record(encoded, r.kind, r.payload);
  BodyError again_error = BodyError::kNone;
  const auto again = parse_body(encoded, limits, again_error, message);
  if (!again || again->first != parsed->first || again->records.size() != parsed->records.size()) {
    fail("the re-encoded body does not parse back the same", encoded);
  }
  for (std::size_t i = 0; i < again->records.size(); ++i) {
    if (again->records[i].kind != parsed->records[i].kind ||
        again->records[i].payload != parsed->records[i].payload) {
      fail("a re-encoded record differs", encoded);
    }
  }
  return 0;
}
