#include "wsbridge/base64.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

namespace wsbridge {

namespace {

constexpr std::string_view kStandard =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kUrl =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::int8_t kInvalid = -1;

// Byte -> 6-bit value; kInvalid outside the alphabet ('=' included: padding is taken off first).
constexpr std::array<std::int8_t, 256> decode_table(std::string_view alphabet) {
  std::array<std::int8_t, 256> table{};
  table.fill(kInvalid);
  for (std::size_t i = 0; i < alphabet.size(); ++i) {
    table[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  }
  return table;
}
constexpr auto kStandardValues = decode_table(kStandard);
constexpr auto kUrlValues = decode_table(kUrl);

std::string encode(std::string_view bytes, std::string_view alphabet, bool pad) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  auto byte_at = [bytes](std::size_t i) -> std::uint32_t {
    return i < bytes.size() ? static_cast<unsigned char>(bytes[i]) : 0u;
  };
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::uint32_t group = byte_at(i) << 16 | byte_at(i + 1) << 8 | byte_at(i + 2);
    // 1, 2 or 3 bytes give 2, 3 or 4 characters; the padding fills the group up to four.
    const std::size_t chars = std::min<std::size_t>(bytes.size() - i, 3) + 1;
    for (std::size_t c = 0; c < chars; ++c) out.push_back(alphabet[(group >> (18 - 6 * c)) & 63]);
    if (pad) out.append(4 - chars, '=');
  }
  return out;
}

// `text` without its padding.
std::optional<std::string> decode(std::string_view text,
                                  const std::array<std::int8_t, 256>& values) {
  // A lone character in the last group carries 6 bits: not even one byte.
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const std::int8_t value = values[static_cast<unsigned char>(c)];
    if (value == kInvalid) return std::nullopt;
    acc = ((acc << 6) | static_cast<std::uint32_t>(value)) & 0xFFFFu;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFFu));
    }
  }
  // The bits left after the last byte must be zero (RFC 4648 section 3.5 lets decoders insist):
  // otherwise several strings decode to the same bytes.
  if (bits > 0 && (acc & ((1u << bits) - 1u)) != 0) return std::nullopt;
  return out;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  return encode(bytes, kStandard, true);
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::size_t padding = 0;
  while (padding < 2 && padding < text.size() && text[text.size() - 1 - padding] == '=') {
    ++padding;
  }
  if (padding > 0 && text.size() % 4 != 0) return std::nullopt;
  const std::string_view data = text.substr(0, text.size() - padding);
  // Padding only ever stands for a group's missing characters: "Zm9v=" and "====" are not base64.
  if (padding > 0 && data.size() % 4 + padding != 4) return std::nullopt;
  return decode(data, kStandardValues);
}

std::string base64url_encode(std::string_view bytes) {
  return encode(bytes, kUrl, false);
}

std::optional<std::string> base64url_decode(std::string_view text) {
  return decode(text, kUrlValues);
}

}  // namespace wsbridge
