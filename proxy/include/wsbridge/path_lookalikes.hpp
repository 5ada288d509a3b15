// Characters a backend may turn into a path separator or a dot: the code points whose Unicode
// NFKC form holds '.', '/', '\', ';' or '%' (all of them, from Python's unicodedata). A backend
// that normalises paths reads "/public/\uFF0E\uFF0E/admin" as "/public/../admin", so a path check
// that does not know them can be walked around. Shared by the rpc mode's path rules
// (plugins/http/path_rules.cpp) and the reverse proxy's (proxy/src/reverse_proxy/request_path.cpp).
#pragma once

#include <array>
#include <string_view>

namespace wsbridge::text {

// Their UTF-8.
inline constexpr std::array<std::string_view, 20> kPathLookalikes = {
    "\xCD\xBE",      // U+037E greek question mark -> ';'
    "\xE2\x80\xA4",  // U+2024 one dot leader -> '.'
    "\xE2\x80\xA5",  // U+2025 two dot leader -> ".."
    "\xE2\x80\xA6",  // U+2026 horizontal ellipsis -> "..."
    "\xE2\x84\x80",  // U+2100 -> "a/c"
    "\xE2\x84\x81",  // U+2101 -> "a/s"
    "\xE2\x84\x85",  // U+2105 -> "c/o"
    "\xE2\x84\x86",  // U+2106 -> "c/u"
    "\xEF\xB8\x94",  // U+FE14 -> ';'
    "\xEF\xB8\x99",  // U+FE19 -> "..."
    "\xEF\xB8\xB0",  // U+FE30 -> ".."
    "\xEF\xB9\x92",  // U+FE52 small full stop -> '.'
    "\xEF\xB9\x94",  // U+FE54 small semicolon -> ';'
    "\xEF\xB9\xA8",  // U+FE68 small reverse solidus -> '\'
    "\xEF\xB9\xAA",  // U+FE6A small percent sign -> '%'
    "\xEF\xBC\x85",  // U+FF05 fullwidth percent sign -> '%'
    "\xEF\xBC\x8E",  // U+FF0E fullwidth full stop -> '.'
    "\xEF\xBC\x8F",  // U+FF0F fullwidth solidus -> '/'
    "\xEF\xBC\x9B",  // U+FF1B fullwidth semicolon -> ';'
    "\xEF\xBC\xBC",  // U+FF3C fullwidth reverse solidus -> '\'
};

constexpr bool has_path_lookalike(std::string_view s) {
  for (const std::string_view l : kPathLookalikes) {
    if (s.find(l) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace wsbridge::text
