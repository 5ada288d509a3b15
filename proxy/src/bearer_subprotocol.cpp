#include "bearer_subprotocol.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string_view>
#include <vector>

namespace wsbridge {

namespace {

constexpr std::string_view kHeader = "sec-websocket-protocol:";

bool starts_with_ci(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), text.begin(), [](char p, char t) {
           return p == std::tolower(static_cast<unsigned char>(t));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<BearerExtraction> extract_bearer_subprotocol(char* data, std::size_t& len) {
  const std::string_view buffer(data, len);
  // A header line starts right after a CRLF (never at offset 0: that is the request line).
  std::size_t line = 0;
  while (true) {
    const std::size_t crlf = buffer.find("\r\n", line);
    if (crlf == std::string_view::npos) return std::nullopt;
    line = crlf + 2;
    if (line >= buffer.size() || buffer.substr(line, 2) == "\r\n") return std::nullopt;  // head end
    if (starts_with_ci(buffer.substr(line), kHeader)) break;
  }
  const std::size_t line_end = buffer.find("\r\n", line);
  if (line_end == std::string_view::npos)
    return std::nullopt;  // the line continues in a later read

  std::string_view values = buffer.substr(line + kHeader.size(), line_end - line - kHeader.size());
  std::vector<std::string_view> kept;
  std::optional<BearerExtraction> found;
  while (true) {
    const std::size_t comma = values.find(',');
    const std::string_view item = trim(values.substr(0, comma));
    if (item.size() > 7 && item.substr(0, 7) == "bearer.") {
      if (!found) found = BearerExtraction{std::string(item.substr(7)), false};
    } else if (!item.empty()) {
      kept.push_back(item);
    }
    if (comma == std::string_view::npos) break;
    values.remove_prefix(comma + 1);
  }
  if (!found) return std::nullopt;
  found->only_bearer = kept.empty();

  // The rewritten line keeps the header name as sent and joins the kept values with bare commas,
  // so it is always shorter than the original (which also held the bearer entry and its comma):
  // the rewrite happens in place, inside the buffer lws gave to recv().
  std::string replacement;
  if (!kept.empty()) {
    replacement.assign(buffer.substr(line, kHeader.size()));
    for (std::size_t i = 0; i < kept.size(); ++i) {
      if (i > 0) replacement += ',';
      replacement.append(kept[i]);
    }
    replacement += "\r\n";
  }
  const std::size_t old_size = line_end + 2 - line;
  if (replacement.size() > old_size) return std::nullopt;  // cannot happen; never write past it
  // Replace [line, line_end + 2) with the shorter replacement and close the gap.
  std::memcpy(data + line, replacement.data(), replacement.size());
  std::memmove(data + line + replacement.size(), data + line + old_size, len - (line + old_size));
  len -= old_size - replacement.size();
  return found;
}

}  // namespace wsbridge
