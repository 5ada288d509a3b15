// JSON from clients, backends and peers, parsed with a bound on its nesting. nlohmann::json
// (3.11) parses and destroys any depth without recursion, but copying, comparing and dumping a
// value recurse once per level: a 1 MiB message of brackets (half a million levels) in an rpc
// request's body overflowed the service thread's stack and killed the process. Nothing
// wsbridge speaks nests more than a few levels; 128 leaves applications' own payloads room.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string_view>

namespace wsbridge::bounded_json {

inline constexpr std::size_t kMaxDepth = 128;

// Whether the arrays and objects of `text` nest at most `max_depth` deep. Brackets inside
// strings do not count; `text` need not be valid JSON (the parser judges that).
inline bool nesting_within(std::string_view text, std::size_t max_depth = kMaxDepth) {
  std::size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return true;
}

// nlohmann::json::parse(text, nullptr, false), but also discarded when `text` nests deeper than
// kMaxDepth (then *too_deep is set, so the caller can say so rather than "not JSON"), or holds a
// NUL byte: nlohmann's lexer takes one for the end of the input (for C strings), so
// "{...}\0anything" parsed as the object, where JSON allows no NUL anywhere (RFC 8259: not even
// in a string, unescaped). Another reader of the same bytes would see something else.
inline nlohmann::json parse(std::string_view text, bool* too_deep = nullptr) {
  const bool deep = !nesting_within(text);
  if (too_deep != nullptr) *too_deep = deep;
  if (deep || text.find('\0') != std::string_view::npos) {
    return nlohmann::json(nlohmann::json::value_t::discarded);
  }
  return nlohmann::json::parse(text, nullptr, false);
}

// The string member `key` of `object`, or "" when `object` is not an object or its `key` is
// missing or not a string. For JSON from outside: nlohmann's value(key, "") throws type_error
// when the member has another type ({"type":5}), and such an exception escaped into lws'
// callback (a POST's close record took a service thread's inbox and then the process down).
inline std::string_view string_member(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return {};
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return {};
  return it->get_ref<const std::string&>();
}

// A request's "id", echoed in its answer: a string or an integer. A number with a fraction or
// an exponent, or beyond 64 bits, is read as a double and would come back in another spelling
// (123456789012345678901234567890 as 1.2345678901234568e+29, 1E2 as 100.0), which the client
// could not match to its request.
inline bool is_request_id(const nlohmann::json& id) {
  return id.is_string() || id.is_number_integer();
}
inline constexpr std::string_view kBadRequestId =
    "'id' must be a string or an integer (of at most 64 bits, without a fraction or exponent)";

// What a caller tells the sender of JSON that is too deep.
inline constexpr std::string_view kTooDeep = "the JSON nests deeper than 128 levels";

}  // namespace wsbridge::bounded_json
