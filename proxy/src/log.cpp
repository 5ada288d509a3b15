#include "wsbridge/log.hpp"

#include <libwebsockets.h>
#include <unistd.h>

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

void write_json(std::string_view level, std::string_view text, nlohmann::json fields) {
  fields["ts"] = timestamp();
  fields["level"] = level;
  fields["msg"] = text;
  write_raw(fields.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

void write_line(std::string_view level, std::string_view text) {
  if (g_format.load(std::memory_order_relaxed) == LogFormat::kJson) {
    write_json(level, text, nlohmann::json::object());
    return;
  }
  std::string line = timestamp();
  line.reserve(line.size() + text.size() + 16);
  line.push_back(' ');
  line.append(level).push_back(' ');
  line.append(text);
  if (line.back() != '\n') line.push_back('\n');
  write_raw(line);
}

void lws_emit(int level, const char* line) {
  std::string_view text(line);
  // lws prefixes its own timestamp and level: "[2026/11/24 14:00:00:0000] E: ...".
  if (auto pos = text.find("] "); pos != std::string_view::npos) text.remove_prefix(pos + 2);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  const LogLevel ours = (level & LLL_ERR) != 0 ? LogLevel::kWarn : LogLevel::kDebug;
  if (log_enabled(ours))
    write_line(ours == LogLevel::kWarn ? "warn" : "debug", "lws: " + std::string(text));
}
}  // namespace

std::optional<LogLevel> parse_log_level(std::string_view name) {
  if (name == "error") return LogLevel::kError;
  if (name == "warn") return LogLevel::kWarn;
  if (name == "info") return LogLevel::kInfo;
  if (name == "debug") return LogLevel::kDebug;
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
