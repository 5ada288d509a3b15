// Reading the Prometheus text that wsbridge's /metrics serves, for tests.
#pragma once

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>

#include "support/ws_test_client.hpp"

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

// One series of the /metrics a wsbridge serves on its admin listener at `admin_port`, read with
// the admin token the tests configure (WSBRIDGE_TEST_ADMIN_TOKEN = `token`).
inline std::optional<double> admin_metric(std::uint16_t admin_port, const std::string& series,
                                          const std::string& token = "admin-secret") {
  return sample(
      http_get("127.0.0.1", admin_port, "/metrics", {{"Authorization", "Bearer " + token}}).body,
      series);
}

}  // namespace wsbridge::testing
