// Shared by the fuzz targets: report a broken invariant and abort (libFuzzer then saves the input
// as a crash). Details are printed escaped (\xNN for bytes outside printable ASCII) and cut at
// 512 bytes, so reports stay readable whatever the input.
#pragma once

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string_view>

namespace wsbridge_fuzz {

inline void print_escaped(std::string_view bytes) {
  constexpr std::size_t kMax = 512;
  std::fputs("  [", stderr);
  for (std::size_t i = 0; i < bytes.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == '\\') {
      std::fputs("\\\\", stderr);
    } else if (c >= 0x20 && c < 0x7f) {
      std::fputc(c, stderr);
    } else {
      std::fprintf(stderr, "\\x%02x", c);
    }
  }
  std::fprintf(stderr, "]%s (%zu bytes)\n", bytes.size() > kMax ? "..." : "", bytes.size());
}

[[noreturn]] inline void fail(const char* target, const char* what,
                              std::initializer_list<std::string_view> details = {}) {
  std::fprintf(stderr, "\n%s: INVARIANT BROKEN: %s\n", target, what);
  for (std::string_view d : details) print_escaped(d);
  std::fflush(stderr);
  std::abort();
}

}  // namespace wsbridge_fuzz
