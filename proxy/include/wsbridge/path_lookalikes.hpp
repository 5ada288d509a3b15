// Characters a backend may turn into a path separator or a dot: the code points whose Unicode
// NFKC form holds '.', '/', '\', ';' or '%' (all of them, from Python's unicodedata). A backend
// that normalises paths reads "/public/\uFF0E\uFF0E/admin" as "/public/../admin", so a path check
// that does not know them can be walked around. Shared by the rpc mode's path rules
// (plugins/http/path_rules.cpp) and the reverse proxy's (proxy/src/reverse_proxy/request_path.cpp).
#pragma once

#include <array>
#include <cstddef>
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

// Whether `cp` is a compatibility form of ASCII letters, digits or a space, which NFKC (and
// Windows' "best fit" to a code page) turns into them: "/\uFF41dmin" is "/admin" to a backend
// that normalises, and "/admin\u00A0" its "/admin " (a trailing space IIS then drops). The blocks
// that hold them: fullwidth ASCII, the long s, the Kelvin sign, Roman numerals, circled letters,
// superscript and subscript digits and letters, ligatures (ff, fi...), mathematical
// alphanumerics, and the spaces other than U+0020.
constexpr bool is_ascii_compatibility_form(char32_t cp) {
  return (cp >= 0xFF01 && cp <= 0xFF5E) || cp == 0x017F || cp == 0x212A ||
         (cp >= 0x2160 && cp <= 0x217F) || (cp >= 0x24B6 && cp <= 0x24E9) ||
         (cp >= 0x2070 && cp <= 0x209C) || cp == 0x00B2 || cp == 0x00B3 || cp == 0x00B9 ||
         (cp >= 0xFB00 && cp <= 0xFB06) || (cp >= 0x1D400 && cp <= 0x1D7FF) || cp == 0x00A0 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Whether `s` (UTF-8, or bytes that are not: those are skipped) holds one of them.
constexpr bool has_ascii_compatibility_form(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t n = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
    if (n == 1 || i + n > s.size()) {
      ++i;
      continue;
    }
    char32_t cp = b & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
    bool valid = true;
    for (std::size_t k = 1; k < n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      valid = valid && (c & 0xC0) == 0x80;
      cp = (cp << 6) | (c & 0x3F);
    }
    if (!valid) {
      ++i;
      continue;
    }
    if (is_ascii_compatibility_form(cp)) return true;
    i += n;
  }
  return false;
}

}  // namespace wsbridge::text
