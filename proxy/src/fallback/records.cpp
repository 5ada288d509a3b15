#include "fallback/records.hpp"

#include <nlohmann/json.hpp>

#include <charconv>

namespace wsbridge::fallback {

namespace {

// The decimal number at the front of `text`, up to `end_char`, taken off it.
std::optional<std::uint64_t> take_number(std::string_view& text, char end_char) {
  const auto end = text.find(end_char);
  if (end == std::string_view::npos) return std::nullopt;
  const auto value = parse_decimal(text.substr(0, end));
  if (value) text.remove_prefix(end + 1);
  return value;
}

}  // namespace

std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  // One spelling per number, as for the tokens: "007" is not 7 (what wsbridge and its client
  // write never has a leading zero, so only a hand-made request meets this).
  if (text.size() > 1 && text.front() == '0') return std::nullopt;
  std::uint64_t value = 0;
  const auto [ptr, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<ParsedBody> parse_body(std::string_view body, const BodyLimits& limits,
                                     BodyError& error, std::string& message) {
  auto fail = [&](BodyError e, std::string what) -> std::optional<ParsedBody> {
    error = e;
    message = std::move(what);
    return std::nullopt;
  };
  error = BodyError::kNone;
  ParsedBody parsed;
  const auto first = take_number(body, '\n');
  if (!first) return fail(BodyError::kMalformed, "the body must begin with \"<number>\\n\"");
  // Sequence numbers start at 1: a 0 is malformed, not a gap (409 would send a client looking
  // for messages it never sent).
  if (*first == 0) return fail(BodyError::kMalformed, "sequence numbers start at 1");
  parsed.first = *first;
  while (!body.empty()) {
    const char kind = body.front();
    if (kind != 't' && kind != 'b' && !(kind == 'c' && limits.control_allowed)) {
      return fail(BodyError::kMalformed, "a record must begin with t or b and its length");
    }
    body.remove_prefix(1);
    const auto length = take_number(body, ':');
    if (!length) return fail(BodyError::kMalformed, "a record's length must be \"<digits>:\"");
    if (*length > limits.max_record_bytes) {
      return fail(BodyError::kTooLarge,
                  "a message is over " + std::to_string(limits.max_record_bytes) + " bytes");
    }
    if (*length > body.size()) return fail(BodyError::kMalformed, "a record is cut short");
    if (parsed.records.size() == limits.max_records) {
      return fail(BodyError::kTooLarge,
                  "more than " + std::to_string(limits.max_records) + " messages in one body");
    }
    parsed.records.push_back(Record{kind, body.substr(0, *length)});
    body.remove_prefix(*length);
  }
  return parsed;
}

void append_first_line(std::string& out, std::uint64_t first) {
  out += std::to_string(first);
  out += '\n';
}

void append_record(std::string& out, char kind, std::string_view payload) {
  out += kind;
  out += std::to_string(payload.size());
  out += ':';
  out.append(payload);
}

std::string close_control(std::uint16_t code, std::string_view reason) {
  const nlohmann::json close = {{"type", "close"}, {"code", code}, {"reason", std::string(reason)}};
  return close.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace wsbridge::fallback
