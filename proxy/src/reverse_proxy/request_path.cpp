// Matching a request path as backends read it (request_path.hpp).
#include "reverse_proxy/request_path.hpp"

#include <algorithm>
#include <cstdint>

#include "wsbridge/text.hpp"

namespace wsbridge::reverse_proxy {

namespace {

// Reads one character of a raw path at `at`: a %XX escape decoded (`escaped` set), anything
// else as it is. Advances `at` past what it read.
char next_decoded(std::string_view raw, std::size_t& at, bool& escaped) {
  const char c = raw[at];
  if (c == '%' && at + 2 < raw.size()) {
    const int high = text::hex_value(raw[at + 1]);
    const int low = text::hex_value(raw[at + 2]);
    if (high >= 0 && low >= 0) {
      at += 3;
      escaped = true;
      return static_cast<char>(high * 16 + low);
    }
  }
  ++at;
  escaped = false;
  return c;
}

// Walks a raw path as its matching path: decoded characters; a '/' that follows another '/'
// skipped; a segment's ";parameters" (a literal ';' to the segment's end) skipped, as Java
// servers drop them ("/admin;jsessionid=1/x" is their "/admin/x"). `visit(char,
// raw_offset_after)` returns false to stop.
template <typename Visit>
void walk_matching(std::string_view raw, Visit visit) {
  bool after_slash = false;
  bool in_parameters = false;
  for (std::size_t at = 0; at < raw.size();) {
    bool escaped = false;
    const char c = next_decoded(raw, at, escaped);
    if (c == ';' && !escaped) in_parameters = true;
    // Java servers cut parameters on the raw bytes, before decoding: an encoded '/' inside one
    // is part of it ("/;%2Fa/admin" is their "//admin", so "/admin" here too).
    if (in_parameters && (c != '/' || escaped)) continue;
    in_parameters = false;
    if (c == '/' && after_slash) continue;
    after_slash = c == '/';
    if (!visit(c, at)) return;
  }
}

bool is_dot_segment(std::string_view segment) {
  return segment == "." || segment == "..";
}

}  // namespace

std::string matching_path(std::string_view raw_path) {
  std::string out;
  out.reserve(raw_path.size());
  walk_matching(raw_path, [&](char c, std::size_t) {
    out.push_back(c);
    return true;
  });
  return out;
}

std::size_t raw_prefix_end(std::string_view raw_path, std::string_view prefix) {
  std::size_t matched = 0;
  std::size_t end = std::string_view::npos;
  enum class Verdict : std::uint8_t { kPathEnded, kCovered, kNotCovered };
  Verdict verdict = Verdict::kPathEnded;
  walk_matching(raw_path, [&](char c, std::size_t after) {
    if (matched == prefix.size()) {  // the prefix is spelt: its last segment must end here
      verdict = c == '/' ? Verdict::kCovered : Verdict::kNotCovered;
      return false;
    }
    if (c != prefix[matched]) {
      verdict = Verdict::kNotCovered;
      return false;
    }
    ++matched;
    end = after;
    return true;
  });
  if (verdict == Verdict::kPathEnded)
    return matched == prefix.size() ? end : std::string_view::npos;
  return verdict == Verdict::kCovered ? end : std::string_view::npos;
}

std::optional<std::string> unsafe_path(std::string_view raw_path) {
  if (raw_path.find('\\') != std::string_view::npos) return "a backslash in the path";
  const std::string path = matching_path(raw_path);
  if (path.find('\\') != std::string::npos) return "an encoded backslash in the path";
  if (path.find('\0') != std::string::npos) return "an encoded NUL in the path";
  // 0xC0 and 0xC1 only ever start an overlong UTF-8 form ("%C0%AE" for '.'), which some servers
  // still decode into the character it spells.
  if (path.find_first_of("\xc0\xc1") != std::string::npos) {
    return "an overlong UTF-8 sequence in the path";
  }
  for (std::size_t start = 0; start <= path.size();) {
    const std::size_t end = std::min(path.find('/', start), path.size());
    if (is_dot_segment(std::string_view(path).substr(start, end - start))) {
      return "a dot segment in the path";
    }
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace wsbridge::reverse_proxy
