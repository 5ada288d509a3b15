#include "support/ws_test_client_util.hpp"

#include <poll.h>

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <system_error>

namespace wsbridge::testing::client_detail {

[[noreturn]] void throw_errno(const std::string& what, int err) {
  throw std::runtime_error(what + ": " + std::system_category().message(err));
}

namespace {

// Remaining time until `deadline` as a poll() timeout; rounds up so we never busy-loop on a
// sub-millisecond remainder.
int poll_timeout_ms(Clock::time_point deadline) {
  const auto now = Clock::now();
  if (now >= deadline) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

}  // namespace

short wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd pfd{fd, events, 0};
    const int r = ::poll(&pfd, 1, poll_timeout_ms(deadline));
    if (r > 0) return pfd.revents;
    if (r == 0) return 0;
    if (errno != EINTR) throw_errno("poll");
  }
}

namespace {

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return ascii_lower(x) == ascii_lower(y);
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    const size_t pos = s.find(sep);
    out.push_back(trim(s.substr(0, pos)));
    if (pos == std::string_view::npos) return out;
    s.remove_prefix(pos + 1);
  }
}

std::string printable(std::string_view s, size_t max) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c >= 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > max) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::mt19937& rng() {
  thread_local std::mt19937 gen{std::random_device{}()};
  return gen;
}

std::string host_header(const std::string& host, uint16_t port) {
  // IPv6 literals must be bracketed in Host.
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

// Builds "<request_line>\r\n<headers>\r\n" where `extra` entries replace same-named defaults.
std::string build_request(const std::string& request_line,
                          std::vector<std::pair<std::string, std::string>> headers,
                          const std::vector<std::pair<std::string, std::string>>& extra) {
  for (const auto& header : extra) {
    auto it = std::find_if(headers.begin(), headers.end(),
                           [&](const auto& h) { return iequals(h.first, header.first); });
    if (it != headers.end()) {
      it->second = header.second;
    } else {
      headers.push_back(header);
    }
  }
  std::string req = request_line;
  req += "\r\n";
  for (const auto& [name, value] : headers) {
    req.append(name).append(": ").append(value).append("\r\n");
  }
  req += "\r\n";
  return req;
}

}  // namespace wsbridge::testing::client_detail
