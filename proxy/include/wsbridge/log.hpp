// Process-wide logging to stderr: one line per event, written with a single write() so lines
// from different threads never interleave. Logged values come from clients (a token's `sub`, a
// path, a header), so the sink escapes what could forge a line or garble a terminal: every event
// stays exactly one line whatever its text holds.
#pragma once

#include <atomic>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

namespace wsbridge {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };
// text: "2026-11-24T14:00:00.000Z info message"; json: one object per line
// ({"ts":...,"level":...,"msg":...} plus the fields of structured events).
enum class LogFormat { kText, kJson };
void set_log_format(LogFormat format);
LogFormat log_format();
// The instance every line names ([server] instance_id): after the timestamp in text, the
// "instance" field in JSON. Set once, before other threads log; empty (the default): none.
void set_log_instance(std::string instance);

// The text format's escaping of one message: control characters (C0, DEL, C1), the Unicode line
// and paragraph separators, bidirectional overrides and invalid UTF-8 become \n, \r, \t, \xHH or
// \u{HHHH}, and a backslash becomes \\, so an escaped message has no line break and cannot pass
// for another event's line. Valid printable UTF-8 is kept as it is.
std::string escape_log_text(std::string_view text);
// The same escaping with backslashes left as they are: for texts shown once, whole, such as a
// config error, where a value's control characters must not reach the terminal raw (nor a NUL
// cut the message short) and doubling the backslashes of quoted text would only mislead.
std::string escape_control_characters(std::string_view text);

// A value that a client chose (a user name from a certificate CN or a token, a path) as one
// `key=value` field of a text line: quoted ("...", with '"' and '\' escaped) when it holds a
// blank, '=', '"', '\' or a control character, so that "dev1 level=error" cannot pass for two
// fields of the line. Plain values stay as they are.
std::string log_field_value(std::string_view value);

inline constexpr std::pair<std::string_view, LogLevel> kLogLevelNames[] = {
    {"error", LogLevel::kError},
    {"warn", LogLevel::kWarn},
    {"info", LogLevel::kInfo},
    {"debug", LogLevel::kDebug},
};
std::optional<LogLevel> parse_log_level(std::string_view name);
std::string_view log_level_name(LogLevel level);

void set_log_level(LogLevel level);
LogLevel log_level();
inline bool log_enabled(LogLevel level) {
  return level <= log_level();
}

// Collects one line and emits it on destruction.
class LogLine {
 public:
  explicit LogLine(LogLevel level) : level_(level) {}
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;
  ~LogLine();
  template <typename T>
  LogLine& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

// One event with fields (e.g. the access-log line of a connection): `text` in text format, the
// fields (with "msg": text) in JSON format.
void log_structured(LogLevel level, const std::string& text, const nlohmann::json& fields);

// Routes libwebsockets' own error and warning lines into our log.
void install_lws_log_bridge();

}  // namespace wsbridge

// The arguments are evaluated only when the level is enabled.
#define WSB_LOG(level)                                       \
  if (!::wsbridge::log_enabled(::wsbridge::LogLevel::level)) \
    ;                                                        \
  else                                                       \
    ::wsbridge::LogLine(::wsbridge::LogLevel::level)
