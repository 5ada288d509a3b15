// Matching a request path as backends read it (request_path.hpp).
#include "reverse_proxy/request_path.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "wsbridge/path_lookalikes.hpp"
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
// servers drop them ("/admin;jsessionid=1/x" is their "/admin/x"); and a segment's trailing dots
// and spaces skipped, as Windows servers drop them ("/admin./x" and "/admin%20/x" are IIS's
// "/admin/x"), unless the segment has nothing else ("." and ".." stay, to be refused).
// `visit(char, raw_offset_before, raw_offset_after)` returns false to stop.
template <typename Visit>
void walk_matching(std::string_view raw, Visit visit) {
  struct Held {
    char c;
    std::size_t before, after;
  };
  std::vector<Held> trailing;  // the segment's dots and spaces since its last other character
  bool segment_has_other = false;
  const auto release = [&] {  // they are followed by more of the segment: they count
    for (const Held& h : trailing) {
      if (!visit(h.c, h.before, h.after)) return false;
    }
    trailing.clear();
    return true;
  };
  bool after_slash = false;
  bool in_parameters = false;
  for (std::size_t at = 0; at < raw.size();) {
    const std::size_t before = at;
    bool escaped = false;
    const char c = next_decoded(raw, at, escaped);
    if (c == ';' && !escaped) in_parameters = true;
    // Java servers cut parameters on the raw bytes, before decoding: an encoded '/' inside one
    // is part of it ("/;%2Fa/admin" is their "//admin", so "/admin" here too).
    if (in_parameters && (c != '/' || escaped)) continue;
    in_parameters = false;
    if (c == '/' && after_slash) continue;
    after_slash = c == '/';
    if (c == '.' || c == ' ') {
      trailing.push_back({c, before, at});
      continue;
    }
    if (c == '/' && segment_has_other) {
      trailing.clear();
    } else if (!release()) {
      return;
    }
    segment_has_other = c != '/';
    if (!visit(c, before, at)) return;
  }
  if (!segment_has_other) release();
}

// A segment of dots and spaces only, with a dot: "." and ".." resolve upwards, and Windows
// servers read "...", ". ." or ".. " as one of them.
bool is_dot_segment(std::string_view segment) {
  return segment.find('.') != std::string_view::npos &&
         segment.find_first_not_of(". ") == std::string_view::npos;
}

// Only spaces: Windows servers read it as an empty segment, so "/%20/admin" is their "//admin".
bool is_blank_segment(std::string_view segment) {
  return !segment.empty() && segment.find_first_not_of(' ') == std::string_view::npos;
}

// An overlong UTF-8 form: 0xC0 and 0xC1 only ever start one ("%C0%AE" for '.'), and so do 0xE0
// and 0xF0 before 0x80-0x9F and 0x80-0x8F ("%E0%80%AE"). Some servers still decode them into the
// character they spell. (Other invalid UTF-8 passes: legacy applications use Latin-1 paths.)
bool has_overlong_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    const auto next = i + 1 < s.size() ? static_cast<unsigned char>(s[i + 1]) : 0u;
    if (b == 0xC0 || b == 0xC1 || (b == 0xE0 && next >= 0x80 && next <= 0x9F) ||
        (b == 0xF0 && next >= 0x80 && next <= 0x8F)) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::string matching_path(std::string_view raw_path) {
  std::string out;
  out.reserve(raw_path.size());
  walk_matching(raw_path, [&](char c, std::size_t, std::size_t) {
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
  walk_matching(raw_path, [&](char c, std::size_t before, std::size_t) {
    if (matched == prefix.size()) {  // the prefix is spelt: its last segment must end here
      verdict = c == '/' ? Verdict::kCovered : Verdict::kNotCovered;
      // With what its last segment had that the matching path leaves out (";parameters",
      // trailing dots): they go with the prefix.
      end = before;
      return false;
    }
    if (c != prefix[matched]) {
      verdict = Verdict::kNotCovered;
      return false;
    }
    ++matched;
    return true;
  });
  if (verdict == Verdict::kPathEnded) {
    return matched == prefix.size() ? raw_path.size() : std::string_view::npos;
  }
  return verdict == Verdict::kCovered ? end : std::string_view::npos;
}

std::optional<std::string> unsafe_path(std::string_view raw_path) {
  if (raw_path.find('\\') != std::string_view::npos) return "a backslash in the path";
  const std::string path = matching_path(raw_path);
  if (path.find('\\') != std::string::npos) return "an encoded backslash in the path";
  if (path.find('\0') != std::string::npos) return "an encoded NUL in the path";
  if (has_overlong_utf8(path)) return "an overlong UTF-8 sequence in the path";
  if (text::has_path_lookalike(path)) {
    return "a character in the path that Unicode normalisation turns into '.', '/', '\\', ';' "
           "or '%'";
  }
  if (text::has_ascii_compatibility_form(path)) {
    return "a character in the path that Unicode normalisation turns into an ASCII letter, digit "
           "or space";
  }
  // Decoded control characters (a tab, %0B, %0C: Java's trim() drops them at a segment's ends),
  // and NTFS stream names ("admin::$DATA" is the directory "admin" to IIS).
  for (const char c : path) {
    if (text::is_ascii_control(c)) return "a control character in the path";
  }
  if (path.find(":$") != std::string::npos) return "an NTFS stream name (':$') in the path";
  for (std::size_t start = 0; start <= path.size();) {
    const std::size_t end = std::min(path.find('/', start), path.size());
    const std::string_view segment = std::string_view(path).substr(start, end - start);
    if (is_dot_segment(segment)) return "a dot segment in the path";
    if (is_blank_segment(segment)) return "a segment of spaces in the path";
    // (Trailing ones are left out of the matching path; a leading one, which Java's trim()
    // drops too, would make "/ admin" another path to us than to such a backend.)
    if (segment.starts_with(' ')) return "a segment that begins with a space in the path";
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace wsbridge::reverse_proxy
