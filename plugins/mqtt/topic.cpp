#include "topic.hpp"

#include "topic_levels.hpp"

#include <cstdint>

namespace wsbridge::mqtt {

namespace {

bool starts_with_wildcard(std::string_view filter) {
  return !filter.empty() && (filter.front() == '+' || filter.front() == '#');
}

bool starts_with_dollar(std::string_view text) {
  return !text.empty() && text.front() == '$';
}

// The rules topic names and filters share (MQTT 3.1.1 sections 1.5.3 and 4.7.3).
std::optional<std::string> common_problem(std::string_view text) {
  if (text.empty()) return "must not be empty";
  if (text.size() > kMaxTopicBytes) return "must be at most 65535 bytes";
  if (text.find('\0') != std::string_view::npos) return "must not contain NUL";
  if (!is_valid_utf8(text)) return "must be valid UTF-8";
  if (!is_valid_mqtt_string(text)) {
    return "must not contain control characters (U+0001-U+001F, U+007F-U+009F) or Unicode "
           "noncharacters (U+FDD0-U+FDEF, U+nFFFE, U+nFFFF)";
  }
  return std::nullopt;
}

}  // namespace

namespace {

// Decodes `text` as UTF-8, calling accept(code point) for each character: false when the text is
// not well-formed UTF-8 or `accept` refuses a character.
template <typename Accept>
bool each_code_point(std::string_view text, const Accept& accept) {
  const std::size_t size = text.size();
  std::size_t i = 0;
  while (i < size) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      if (!accept(std::uint32_t{lead})) return false;
      ++i;
      continue;
    }
    // Sequence length and the smallest code point it may encode (anything below is overlong).
    std::size_t extra = 0;
    std::uint32_t code_point = 0;
    std::uint32_t min = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
      extra = 1;
      code_point = lead & 0x1Fu;
      min = 0x80;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      extra = 2;
      code_point = lead & 0x0Fu;
      min = 0x800;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      extra = 3;
      code_point = lead & 0x07u;
      min = 0x10000;
    } else {
      return false;  // a continuation byte, 0xC0/0xC1 (always overlong) or beyond U+10FFFF
    }
    if (size - i <= extra) return false;  // truncated
    for (std::size_t k = 1; k <= extra; ++k) {
      const auto byte = static_cast<unsigned char>(text[i + k]);
      if ((byte & 0xC0u) != 0x80u) return false;
      code_point = (code_point << 6) | (byte & 0x3Fu);
    }
    if (code_point < min || code_point > 0x10FFFF) return false;
    if (code_point >= 0xD800 && code_point <= 0xDFFF) return false;  // surrogates
    if (!accept(code_point)) return false;
    i += extra + 1;
  }
  return true;
}

}  // namespace

bool is_mqtt_forbidden_code_point(std::uint32_t c) {
  return c <= 0x1F || (c >= 0x7F && c <= 0x9F) || (c >= 0xFDD0 && c <= 0xFDEF) ||
         (c & 0xFFFE) == 0xFFFE;
}

bool is_valid_mqtt_string(std::string_view text) {
  return each_code_point(text, [](std::uint32_t c) { return !is_mqtt_forbidden_code_point(c); });
}

std::optional<std::string> topic_name_problem(std::string_view topic) {
  if (auto problem = common_problem(topic)) return problem;
  if (topic.find_first_of("+#") != std::string_view::npos) {
    return "must not contain wildcards ('+' or '#')";
  }
  return std::nullopt;
}

std::optional<std::string> topic_filter_problem(std::string_view filter) {
  if (auto problem = common_problem(filter)) return problem;
  LevelCursor levels(filter);
  std::string_view level;
  bool after_hash = false;
  while (levels.next(level)) {
    if (after_hash) return "may use '#' only as the whole last level";
    if (level.find('#') != std::string_view::npos) {
      if (level != "#") return "may use '#' only as the whole last level";
      after_hash = true;
    }
    if (level.find('+') != std::string_view::npos && level != "+") {
      return "may use '+' only as a whole level";
    }
  }
  return std::nullopt;
}

bool filter_matches(std::string_view filter, std::string_view topic) {
  // '$' topics (such as $SYS/...) are for the server: only a literal first level reaches them.
  if (starts_with_dollar(topic) && starts_with_wildcard(filter)) return false;
  LevelCursor filter_levels(filter);
  LevelCursor topic_levels(topic);
  std::string_view f;
  std::string_view t;
  while (filter_levels.next(f)) {
    if (f == "#") return true;  // any number of levels, zero included: "a/#" matches "a"
    if (!topic_levels.next(t)) return false;
    if (f != "+" && f != t) return false;
  }
  return !topic_levels.next(t);
}

bool filter_covers(std::string_view outer, std::string_view inner) {
  // A leading wildcard of `outer` misses the '$' topics a literal '$' first level of `inner`
  // names. (A wildcard-first `inner` matches no '$' topic, so it needs no such care.)
  if (starts_with_wildcard(outer) && starts_with_dollar(inner)) return false;
  LevelCursor outer_levels(outer);
  LevelCursor inner_levels(inner);
  std::string_view o;
  std::string_view n;
  // Whether the levels read so far join to "": at the start, or after one empty level.
  bool nothing_yet = true;
  bool first = true;
  while (outer_levels.next(o)) {
    if (o == "#") return true;
    if (!inner_levels.next(n)) return false;  // outer needs a level some inner topic lacks
    if (n == "#") {
      // Inner also matches the topic that ends right here, which a non-'#' outer level needs
      // one more level for. Unless that topic would be "", which is no topic: then inner
      // matches one level or more here, just like "+/#" ("+/#" covers "#", "/+/#" covers "/#").
      std::string_view after;
      return nothing_yet && o == "+" && outer_levels.next(after) && after == "#";
    }
    if (o != "+" && (n == "+" || n != o)) return false;
    nothing_yet = first && n.empty();
    first = false;
  }
  return !inner_levels.next(n);  // outer ended: inner must not match deeper topics
}

}  // namespace wsbridge::mqtt
