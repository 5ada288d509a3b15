// Test helpers for the MQTT codec tests: packets written as byte lists, as the spec shows them.
#pragma once

#include <initializer_list>
#include <string>

namespace wsbridge::mqtt::wire::test {

// Bytes from a list of numbers and strings: bytes({0x10, 0x02}) or bytes({0x00, 0x04}, "MQTT").
inline std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

// Escaped for test failure messages (\xNN outside printable ASCII).
inline std::string hex(const std::string& data) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : data) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += digits[c >> 4];
      out += digits[c & 0xF];
    }
  }
  return out;
}

}  // namespace wsbridge::mqtt::wire::test
