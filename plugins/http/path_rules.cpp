#include "path_rules.hpp"

#include <algorithm>
#include <cctype>

#include "rpc.hpp"  // valid_utf8
#include "wsbridge/path_lookalikes.hpp"

namespace wsbridge::http {

namespace {

bool hex(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) != 0;
}

int hex_value(char c) {
  return std::isdigit(static_cast<unsigned char>(c)) != 0
             ? c - '0'
             : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
}

// One round of %XX decoding; a '%' not followed by two hex digits stays as it is.
std::string percent_decoded(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) && hex(s[i + 2])) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// A segment that is only dots (and spaces, which Windows strips): ".", "..", "...", ". .".
bool dot_segment(std::string_view segment) {
  return segment.find('.') != std::string_view::npos &&
         segment.find_first_not_of(". ") == std::string_view::npos;
}

// The reason `s` (the raw path or one of its decodings) is refused, or "" when it is fine.
std::string shape_problem(std::string_view s, std::size_t raw_slashes) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return "'path' must not contain control characters";
    if (c == '\\') return "'path' must not contain '\\'";
    if (c == ';') {
      return "'path' must not contain ';' (path parameters: \"..;\" is \"..\" to Tomcat, Jetty "
             "and Spring)";
    }
  }
  if (static_cast<std::size_t>(std::count(s.begin(), s.end(), '/')) != raw_slashes) {
    return "'path' must not encode '/' (%2F)";
  }
  if (s.find("//") != std::string_view::npos) return "'path' must not contain empty segments";
  std::string_view rest = s;
  while (!rest.empty()) {
    rest.remove_prefix(1);  // the '/'
    const auto next = rest.find('/');
    if (dot_segment(rest.substr(0, next))) {
      return "'path' must not contain '.' or '..' segments";
    }
    if (next == std::string_view::npos) break;
    rest.remove_prefix(next);
  }
  if (!valid_utf8(s)) return "'path' must be UTF-8 (no overlong forms)";
  if (text::has_ascii_compatibility_form(s)) {
    return "'path' must not contain characters that Unicode normalisation turns into ASCII "
           "letters, digits or spaces";
  }
  if (text::has_path_lookalike(s)) {
    return "'path' must not contain characters that Unicode normalisation turns into '.', '/', "
           "'\\', ';' or '%'";
  }
  return {};
}

bool below(std::string_view path, std::string_view prefix) {
  if (!path.starts_with(prefix)) return false;
  // "/orders" allows "/orders" and "/orders/1", not "/orders-admin".
  return prefix.ends_with('/') || path.size() == prefix.size() || path[prefix.size()] == '/';
}

}  // namespace

PathCheck check_rpc_path(std::string_view target, const std::vector<std::string>& prefixes) {
  auto malformed = [](std::string why) {
    return PathCheck{PathVerdict::kMalformed, std::move(why)};
  };
  if (!target.starts_with('/')) return malformed("'path' must start with '/'");
  for (const char c : target) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '\\' || c == '#') {
      return malformed("'path' must not contain spaces, control characters, '\\' or '#'");
    }
  }
  const std::string_view path = target.substr(0, target.find('?'));
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' && (i + 2 >= path.size() || !hex(path[i + 1]) || !hex(path[i + 2]))) {
      return malformed("'path' has a '%' that does not start a %XX escape");
    }
  }
  // The raw path and each decoding of it, as backends that decode once, twice, ... would see it.
  const auto raw_slashes = static_cast<std::size_t>(std::count(path.begin(), path.end(), '/'));
  std::string level(path);
  for (int decodings = 0;; ++decodings) {
    std::string why = shape_problem(level, raw_slashes);
    if (!why.empty()) {
      if (decodings > 0) why += " (found after percent-decoding)";
      return malformed(std::move(why));
    }
    std::string next = percent_decoded(level);
    if (next == level) break;
    if (decodings == kMaxDecodings) {
      return malformed("'path' is percent-encoded more than " + std::to_string(kMaxDecodings) +
                       " times over");
    }
    level = std::move(next);
  }
  for (const auto& prefix : prefixes) {
    if (below(path, prefix)) return {};
  }
  return {PathVerdict::kOutside, "path " + std::string(path) + " is not allowed on this route"};
}

bool path_allowed(std::string_view target, const std::vector<std::string>& prefixes,
                  std::string& why) {
  PathCheck check = check_rpc_path(target, prefixes);
  why = std::move(check.why);
  return check.verdict == PathVerdict::kAllowed;
}

}  // namespace wsbridge::http
