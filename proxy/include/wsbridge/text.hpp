// ASCII case folding, blank trimming and hex for protocol text (header names, tokens, hosts,
// config keys, digests), and the text of an errno: one definition for the core and the adapters.
// Locale-independent on purpose: protocol text is compared byte by byte, whatever the process
// locale says.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

namespace wsbridge::text {

constexpr char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

constexpr char ascii_upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

// A header name as backends may read it: lower case, every character other than a letter or
// digit read as '-' ("X_Forwarded.For" -> "x-forwarded-for"). WSGI, CGI and many frameworks turn
// "X-Wsbridge-User" and "X_Wsbridge_User" into the same HTTP_X_WSBRIDGE_USER, so a check on the
// spelling alone lets a client forge a header it is refused.
inline std::string canonical_header_name(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    c = alnum ? ascii_lower(c) : '-';
  }
  return out;
}

// (HTTP method names are compared upper-case.)
inline std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_upper(c);
  return out;
}

constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

// Without leading and trailing spaces and tabs (HTTP's optional white space).
constexpr std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "a, b ,c" has `token` as one of its comma-separated elements, in any case (an HTTP list field
// such as Connection or Transfer-Encoding, RFC 9110 5.6.1).
constexpr bool list_contains(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// A C0 control character or DEL (0x00-0x1F, 0x7F): what a name, a path or a header value that
// reaches a log line, a header or a terminal must not hold.
constexpr bool is_ascii_control(char c) {
  return (c >= 0 && c < 0x20) || c == 0x7f;
}

// A host name as DNS has them: labels of letters, digits and inner '-' (and '_' where
// `underscore`: internal names carry it), 1 to 63 each, 253 bytes at most. "", "a..b", "-a.b",
// "a-.b" and "a." (a trailing dot: strip it first where a fully qualified name is welcome) are
// none. What a Host may name before it is echoed into a Location or X-Forwarded-Host.
constexpr bool is_dns_name(std::string_view name, bool underscore = false) {
  if (name.empty() || name.size() > 253) return false;
  for (std::string_view rest = name;;) {
    const auto dot = rest.find('.');
    const std::string_view label = rest.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (const char c : label) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || (underscore && c == '_');
      if (!ok) return false;
    }
    if (dot == std::string_view::npos) return true;
    rest.remove_prefix(dot + 1);
  }
}

// The value of one hex digit, or -1 when `c` is none.
constexpr int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Bytes as lowercase hex, two digits each (digests, fingerprints).
inline std::string lower_hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char b : bytes) {
    const auto u = static_cast<unsigned char>(b);
    out.push_back(kHex[u >> 4]);
    out.push_back(kHex[u & 15]);
  }
  return out;
}

// `text` with each byte that `encode` (called with it as unsigned char) says so written as "%XX",
// upper-case hex (RFC 3986 2.1), the others as they are.
template <class Encode>
std::string percent_encoded(std::string_view text, Encode encode) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (encode(u)) {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// At most `max_bytes` of `text`, cut before a UTF-8 continuation byte so that no character is
// split: a close reason or an MQTT Reason String that is valid UTF-8 stays so once shortened
// (cut inside a character, a WebSocket client fails the connection, RFC 6455 8.1, and an MQTT
// client the packet, [MQTT-1.5.4-1]).
constexpr std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t n = max_bytes;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return text.substr(0, n);
}

// What an errno value says ("Connection reset by peer"). std::strerror may share a buffer between
// threads; this never does.
inline std::string errno_text(int error) {
  return std::generic_category().message(error);
}

}  // namespace wsbridge::text
