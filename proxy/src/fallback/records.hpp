// The record format of the HTTP fallbacks' bodies (docs/FALLBACK.md): a first line "<number>\n"
// (a POST's first sequence number, a poll answer's first message id), then records back to back,
// "t<length>:<bytes>" (text), "b<length>:<bytes>" (binary), "c<length>:<json>" (control, in poll
// answers only). Lengths are decimal byte counts, so any payload passes unescaped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wsbridge::fallback {

struct Record {
  char kind = 't';  // 't', 'b' or 'c'
  std::string_view payload;
};

struct ParsedBody {
  std::uint64_t first = 0;
  std::vector<Record> records;  // views into the parsed text
};

struct BodyLimits {
  std::size_t max_record_bytes = 0;  // a longer record: kTooLarge
  std::size_t max_records = 10'000;
  bool control_allowed = false;  // 'c' records (poll answers, never a client's POST)
};

enum class BodyError { kNone, kMalformed, kTooLarge };

// A decimal number of 1 to 19 digits and nothing else (a message id, a length, a sequence number):
// no sign, no blanks, no other base, no leading zero.
std::optional<std::uint64_t> parse_decimal(std::string_view text);

// Parses `body`; on failure `error` says why and `message` what, for the 400/413 answer.
std::optional<ParsedBody> parse_body(std::string_view body, const BodyLimits& limits,
                                     BodyError& error, std::string& message);

// Appends the first line, or one record, to `out`.
void append_first_line(std::string& out, std::uint64_t first);
void append_record(std::string& out, char kind, std::string_view payload);

// The control message that tells a client its session's close: {"type":"close","code":...,
// "reason":"..."} (a reason that is not UTF-8 has its bad bytes replaced).
std::string close_control(std::uint16_t code, std::string_view reason);

}  // namespace wsbridge::fallback
