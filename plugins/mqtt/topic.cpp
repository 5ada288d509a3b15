#include "topic.hpp"

#include <vector>

namespace wsbridge::mqtt {

namespace {

// Splits on '/' without allocating the pieces.
std::vector<std::string_view> levels(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

std::optional<std::string> common_problem(std::string_view s) {
  if (s.empty()) return "must not be empty";
  if (s.size() > kMaxTopicBytes) return "must be at most 65535 bytes";
  if (s.find('\0') != std::string_view::npos) return "must not contain NUL";
  if (!is_valid_utf8(s)) return "must be valid UTF-8";
  return std::nullopt;
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
      if (c < 0xC2) return false;  // overlong
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= n) return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    p += n + 1;
  }
  return true;
}

std::optional<std::string> topic_name_problem(std::string_view topic) {
  if (auto p = common_problem(topic)) return p;
  if (topic.find_first_of("+#") != std::string_view::npos) {
    return "must not contain wildcards ('+' or '#')";
  }
  return std::nullopt;
}

std::optional<std::string> topic_filter_problem(std::string_view filter) {
  if (auto p = common_problem(filter)) return p;
  const auto parts = levels(filter);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string_view level = parts[i];
    if (level.find('#') != std::string_view::npos && (level != "#" || i + 1 != parts.size())) {
      return "may use '#' only as the whole last level";
    }
    if (level.find('+') != std::string_view::npos && level != "+") {
      return "may use '+' only as a whole level";
    }
  }
  return std::nullopt;
}

bool filter_matches(std::string_view filter, std::string_view topic) {
  if (!topic.empty() && topic.front() == '$' && !filter.empty() &&
      (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  const auto f = levels(filter);
  const auto t = levels(topic);
  std::size_t i = 0;
  for (; i < f.size(); ++i) {
    if (f[i] == "#") return true;  // also matches the parent level ("a/#" matches "a")
    if (i >= t.size()) return false;
    if (f[i] != "+" && f[i] != t[i]) return false;
  }
  return i == t.size();
}

bool filter_covers(std::string_view outer, std::string_view inner) {
  const auto o = levels(outer);
  const auto n = levels(inner);
  // '$' topics are matched only by filters that name their first level literally.
  // (A wildcard-first inner filter matches no '$' topic either, so only a literal one matters.)
  const bool outer_wild_first = o.front() == "+" || o.front() == "#";
  const bool inner_literal_dollar = !n.front().empty() && n.front().front() == '$';
  if (outer_wild_first && inner_literal_dollar) return false;
  std::size_t i = 0;
  for (; i < o.size(); ++i) {
    if (o[i] == "#") return true;
    if (i >= n.size()) return false;
    if (n[i] == "#") return false;  // inner matches deeper topics than a non-'#' outer level
    if (o[i] == "+") continue;
    if (n[i] == "+" || o[i] != n[i]) return false;
  }
  return i == n.size();  // outer ended: inner must end too
}

}  // namespace wsbridge::mqtt
