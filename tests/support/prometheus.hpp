// Reading the Prometheus text that wsbridge's /metrics serves, for tests.
#pragma once

#include <optional>
#include <sstream>
#include <string>

namespace wsbridge::testing {

// The value of one sample line, e.g. sample(text, "wsbridge_connections{route=\"/echo\"}").
inline std::optional<double> sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

}  // namespace wsbridge::testing
