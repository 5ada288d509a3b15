#include "codec.hpp"

#include <array>
#include <cstdint>

namespace wsbridge::mqtt {

namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::int8_t kInvalid = -1;

// Byte -> 6-bit value, kInvalid for bytes outside the alphabet ('=' included: it is handled
// before decoding).
constexpr std::array<std::int8_t, 256> make_decode_table() {
  std::array<std::int8_t, 256> table{};
  table.fill(kInvalid);
  for (std::size_t i = 0; i < kAlphabet.size(); ++i) {
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  }
  return table;
}
constexpr std::array<std::int8_t, 256> kDecode = make_decode_table();

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  const auto byte = [&](std::size_t i) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i]));
  };
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t group = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += kAlphabet[(group >> 18) & 63];
    out += kAlphabet[(group >> 12) & 63];
    out += kAlphabet[(group >> 6) & 63];
    out += kAlphabet[group & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    const std::uint32_t group = byte(i) << 16;
    out += kAlphabet[(group >> 18) & 63];
    out += kAlphabet[(group >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    const std::uint32_t group = (byte(i) << 16) | (byte(i + 1) << 8);
    out += kAlphabet[(group >> 18) & 63];
    out += kAlphabet[(group >> 12) & 63];
    out += kAlphabet[(group >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  // Padding is optional, but when present it must complete the last group of four.
  std::size_t length = text.size();
  std::size_t padding = 0;
  while (length > 0 && padding < 2 && text[length - 1] == '=') {
    --length;
    ++padding;
  }
  if (padding > 0 && text.size() % 4 != 0) return std::nullopt;
  // A lone character in the last group carries 6 bits: not even one byte.
  if (length % 4 == 1) return std::nullopt;

  std::string out;
  out.reserve(length / 4 * 3 + 2);
  std::uint32_t bits = 0;
  int bit_count = 0;
  for (std::size_t i = 0; i < length; ++i) {
    const std::int8_t value = kDecode[static_cast<unsigned char>(text[i])];
    if (value == kInvalid) return std::nullopt;
    bits = ((bits << 6) | static_cast<std::uint32_t>(value)) & 0xFFFFFFu;
    bit_count += 6;
    if (bit_count >= 8) {
      bit_count -= 8;
      out.push_back(static_cast<char>((bits >> bit_count) & 0xFFu));
    }
  }
  // The bits left over after the last byte must be zero, so that each byte string has exactly
  // one accepted encoding (RFC 4648 section 3.5 allows decoders to insist).
  if ((bits & ((1u << bit_count) - 1u)) != 0) return std::nullopt;
  return out;
}

void append_json_string(std::string& out, std::string_view text) {
  static constexpr std::string_view kHex = "0123456789abcdef";
  out.reserve(out.size() + text.size() + 2);
  out.push_back('"');
  // Copies runs of plain bytes at once; only the rare bytes that need escaping are handled one
  // by one.
  std::size_t run_start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text, run_start, i - run_start);
    run_start = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 15];
        break;
    }
  }
  out.append(text, run_start, text.size() - run_start);
  out.push_back('"');
}

}  // namespace wsbridge::mqtt
