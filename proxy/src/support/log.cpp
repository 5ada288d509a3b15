#include "wsbridge/log.hpp"

#include <libwebsockets.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace wsbridge {

namespace {
std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::atomic<LogFormat> g_format{LogFormat::kText};

void write_raw(const std::string& line) {
  // One write() keeps concurrent lines whole; stderr is unbuffered anyway.
  std::size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::write(STDERR_FILENO, line.data() + off, line.size() - off);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
}

std::string timestamp() {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t seconds = system_clock::to_time_t(now);
  const auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[40];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", stamp, static_cast<int>(millis));
  return out;
}

// Decodes one UTF-8 sequence at text[i] (RFC 3629: shortest form, no surrogates, at most
// U+10FFFF); returns its length, or 0 when the bytes there are not valid UTF-8.
std::size_t utf8_sequence(std::string_view text, std::size_t i, char32_t& cp) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b0 = byte(i);
  std::size_t len = 0;
  char32_t min = 0;
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  } else if ((b0 & 0xe0) == 0xc0) {
    len = 2, cp = b0 & 0x1f, min = 0x80;
  } else if ((b0 & 0xf0) == 0xe0) {
    len = 3, cp = b0 & 0x0f, min = 0x800;
  } else if ((b0 & 0xf8) == 0xf0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > text.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

// Code points that must not reach a log line raw: they break lines (in a terminal, a log viewer
// or a JSON-lines consumer that splits on U+2028) or reorder what is shown (bidi controls).
bool must_escape(char32_t cp) {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
         (cp >= 0x200e && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) ||
         (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

// Written once before the service threads start (set_log_instance), read-only after.
std::string g_instance;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)

void write_json(std::string_view level, std::string_view text, nlohmann::json fields) {
  fields["ts"] = timestamp();
  if (!g_instance.empty()) fields["instance"] = g_instance;
  fields["level"] = level;
  fields["msg"] = text;
  write_raw(fields.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

void write_line(std::string_view level, std::string_view text) {
  if (g_format.load(std::memory_order_relaxed) == LogFormat::kJson) {
    write_json(level, text, nlohmann::json::object());
    return;
  }
  // A message's own trailing line break is not part of its text; any other one is escaped.
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  std::string line = timestamp();
  line.reserve(line.size() + g_instance.size() + text.size() + 16);
  line.push_back(' ');
  if (!g_instance.empty()) line.append(g_instance).push_back(' ');
  line.append(level).push_back(' ');
  line.append(escape_log_text(text));
  line.push_back('\n');
  write_raw(line);
}

void lws_emit(int level, const char* line) {
  std::string_view text(line);
  // lws prefixes its own timestamp and level: "[2026/11/24 14:00:00:0000] E: ...".
  if (auto pos = text.find("] "); pos != std::string_view::npos) text.remove_prefix(pos + 2);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  // lws 4.1.6 reports every adoption with a read buffer as an error ("calling service"): it is
  // how held upgrades and connections the reverse proxy gives back return to lws, not a fault.
  const bool routine = text.find("adopt_socket_readbuf: calling service") != std::string_view::npos;
  const LogLevel ours = (level & LLL_ERR) != 0 && !routine ? LogLevel::kWarn : LogLevel::kDebug;
  if (log_enabled(ours))
    write_line(ours == LogLevel::kWarn ? "warn" : "debug", "lws: " + std::string(text));
}
}  // namespace

std::string log_field_value(std::string_view value) {
  const bool plain = !value.empty() && std::none_of(value.begin(), value.end(), [](char c) {
    return c == ' ' || c == '=' || c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20 ||
           c == 0x7f;
  });
  if (plain) return std::string(value);
  std::string out = "\"";
  for (const char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + '"';
}

namespace {
std::string escape_text(std::string_view text, bool escape_backslash) {
  std::string out;
  out.reserve(text.size());
  char hex[16];
  for (std::size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c >= 0x20 && c < 0x7f && (c != '\\' || !escape_backslash)) {  // the common case
      out.push_back(c);
      ++i;
      continue;
    }
    char32_t cp = 0;
    const std::size_t len = utf8_sequence(text, i, cp);
    if (len == 0) {  // not UTF-8: show the byte
      std::snprintf(hex, sizeof hex, "\\x%02X", static_cast<unsigned char>(c));
      out += hex;
      ++i;
      continue;
    }
    if (cp == '\\') {
      out += "\\\\";  // only reached when escape_backslash
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp < 0x80 && must_escape(cp)) {
      std::snprintf(hex, sizeof hex, "\\x%02X", static_cast<unsigned>(cp));
      out += hex;
    } else if (must_escape(cp)) {
      std::snprintf(hex, sizeof hex, "\\u{%04X}", static_cast<unsigned>(cp));
      out += hex;
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
  return out;
}
}  // namespace

std::string escape_log_text(std::string_view text) {
  return escape_text(text, true);
}

std::string escape_control_characters(std::string_view text) {
  return escape_text(text, false);
}

std::optional<LogLevel> parse_log_level(std::string_view name) {
  for (const auto& [level_name, level] : kLogLevelNames) {
    if (level_name == name) return level;
  }
  return std::nullopt;
}

std::string_view log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "error";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kDebug:
      return "debug";
  }
  return "info";
}

void set_log_instance(std::string instance) {
  g_instance = escape_log_text(instance);
}

void set_log_format(LogFormat format) {
  g_format.store(format, std::memory_order_relaxed);
}
LogFormat log_format() {
  return g_format.load(std::memory_order_relaxed);
}

void log_structured(LogLevel level, const std::string& text, const nlohmann::json& fields) {
  if (!log_enabled(level)) return;
  if (log_format() == LogFormat::kJson) {
    write_json(log_level_name(level), text, fields);
  } else {
    write_line(log_level_name(level), text);
  }
}

void set_log_level(LogLevel level) {
  g_level.store(level, std::memory_order_relaxed);
}
LogLevel log_level() {
  return g_level.load(std::memory_order_relaxed);
}

LogLine::~LogLine() {
  write_line(log_level_name(level_), stream_.str());
}

void install_lws_log_bridge() {
  // lws warnings are mostly about peers misbehaving (already reflected in our close logs), so they
  // are debug detail; lws errors are worth a warning. WSBRIDGE_LWS_DEBUG=1 (with log_level =
  // "debug") shows everything lws says, for chasing a libwebsockets problem.
  lws_set_log_level(std::getenv("WSBRIDGE_LWS_DEBUG") != nullptr ? 0xff : (LLL_ERR | LLL_WARN),
                    lws_emit);
}

}  // namespace wsbridge
