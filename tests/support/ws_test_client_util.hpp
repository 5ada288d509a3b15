// Helpers shared by the test client's sources (ws_test_client*.cpp), not part of its interface:
// poll() with a deadline, the ASCII text handling of HTTP heads, escaping for error messages,
// the random source, and request building.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsbridge::testing::client_detail {

using Clock = std::chrono::steady_clock;

[[noreturn]] void throw_errno(const std::string& what, int err = errno);
// Waits for `events` on fd. Returns revents, or 0 on timeout.
short wait_fd(int fd, short events, Clock::time_point deadline);

bool iequals(std::string_view a, std::string_view b);
std::string_view trim(std::string_view s);
std::vector<std::string_view> split(std::string_view s, char sep);
// Error messages quote what the server actually sent; escape it so binary junk stays readable.
std::string printable(std::string_view s, size_t max = 300);

std::mt19937& rng();

std::string host_header(const std::string& host, uint16_t port);
// Builds "<request_line>\r\n<headers>\r\n" where `extra` entries replace same-named defaults.
std::string build_request(const std::string& request_line,
                          std::vector<std::pair<std::string, std::string>> headers,
                          const std::vector<std::pair<std::string, std::string>>& extra);

}  // namespace wsbridge::testing::client_detail
