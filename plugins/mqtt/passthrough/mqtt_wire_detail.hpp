// Internals shared by the MQTT codec's source files (mqtt_packets.cpp, mqtt_acks.cpp,
// mqtt_properties.cpp, mqtt_reader.cpp): a bounds-checked cursor over a packet body and the
// big-endian / variable byte integer writers. Not part of the interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace wsbridge::mqtt::wire::detail {

// Reads a packet body front to back. Every read checks the bounds first and returns false when
// the value runs past the end, so parsers never read past the packet.
class Cursor {
 public:
  explicit Cursor(std::string_view bytes) : rest_(bytes) {}

  bool empty() const { return rest_.empty(); }
  std::size_t size() const { return rest_.size(); }
  std::string_view rest() const { return rest_; }

  bool u8(std::uint8_t& out) {
    if (rest_.empty()) return false;
    out = static_cast<std::uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    return true;
  }
  bool u16(std::uint16_t& out) {
    if (rest_.size() < 2) return false;
    out = static_cast<std::uint16_t>((byte(0) << 8) | byte(1));
    rest_.remove_prefix(2);
    return true;
  }
  bool u32(std::uint32_t& out) {
    if (rest_.size() < 4) return false;
    out = (static_cast<std::uint32_t>(byte(0)) << 24) |
          (static_cast<std::uint32_t>(byte(1)) << 16) | (static_cast<std::uint32_t>(byte(2)) << 8) |
          static_cast<std::uint32_t>(byte(3));
    rest_.remove_prefix(4);
    return true;
  }
  // A variable byte integer of at most 4 bytes, in its shortest encoding (MQTT 5 section 1.5.5,
  // [MQTT-1.5.5-1]).
  bool varint(std::uint32_t& out) {
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < 4; ++i) {
      if (i >= rest_.size()) return false;
      const std::uint32_t b = byte(i);
      value |= (b & 0x7F) << (7 * i);
      if ((b & 0x80) == 0) {
        if (i > 0 && b == 0) return false;
        rest_.remove_prefix(i + 1);
        out = value;
        return true;
      }
    }
    return false;
  }
  bool bytes(std::size_t n, std::string_view& out) {
    if (rest_.size() < n) return false;
    out = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return true;
  }
  // Two-byte length, then that many bytes (UTF-8 strings and binary data).
  bool prefixed(std::string_view& out) {
    std::uint16_t n = 0;
    Cursor saved = *this;
    if (!u16(n) || !bytes(n, out)) {
      *this = saved;
      return false;
    }
    return true;
  }

 private:
  std::uint32_t byte(std::size_t i) const { return static_cast<unsigned char>(rest_[i]); }
  std::string_view rest_;
};

inline void put_u8(std::string& out, std::uint8_t v) {
  out.push_back(static_cast<char>(v));
}
inline void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}
inline void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xFF));
}
// Values over 268435455 (4 bytes' worth) are the caller's bug; they are cut to 28 bits.
inline void put_varint(std::string& out, std::uint32_t v) {
  v &= 0x0FFFFFFF;
  do {
    std::uint8_t b = v & 0x7F;
    v >>= 7;
    if (v != 0) b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (v != 0);
}
// Strings longer than 65535 bytes cannot be encoded; they are cut (callers pass parsed values or
// short strings of their own).
inline void put_prefixed(std::string& out, std::string_view s) {
  if (s.size() > 0xFFFF) s = s.substr(0, 0xFFFF);
  put_u16(out, static_cast<std::uint16_t>(s.size()));
  out.append(s);
}
// A property block with its length in front.
inline void put_properties(std::string& out, std::string_view block) {
  put_varint(out, static_cast<std::uint32_t>(block.size()));
  out.append(block);
}
// A whole packet: first byte, remaining length, body.
inline std::string packet(std::uint8_t first, std::string_view body) {
  std::string out;
  out.reserve(body.size() + 5);
  put_u8(out, first);
  put_varint(out, static_cast<std::uint32_t>(body.size()));
  out.append(body);
  return out;
}

// Sets a parser's error and returns its "no packet".
inline std::nullopt_t refuse(std::string& error, std::string reason) {
  error = std::move(reason);
  return std::nullopt;
}
inline std::uint8_t flags_of(std::string_view packet) {
  return static_cast<unsigned char>(packet[0]) & 0x0F;
}

// A UTF-8 string as MQTT allows it (is_valid_mqtt_string): valid UTF-8 without U+0000, control
// characters or noncharacters, which the broker would drop the client for.
bool valid_mqtt_string(std::string_view s);

// Where the properties of a packet are allowed (MQTT 5 table 2-4): one bit per packet type, and
// bit 0 for the Will properties of CONNECT.
inline constexpr std::uint32_t kWillContext = 0;
inline constexpr std::uint32_t context_bit(std::uint32_t type_or_will) {
  return 1u << type_or_will;
}

// Reads a property length and block from `in`, checks each property is known, well formed and
// allowed in `context` (a packet type number, or kWillContext). On failure sets `error`.
bool read_properties(Cursor& in, std::uint32_t context, std::string_view& block,
                     std::string& error);

}  // namespace wsbridge::mqtt::wire::detail
