// Helpers shared by the test client's sources (ws_test_client*.cpp), not part of its interface:
// poll() with a deadline, the ASCII text handling of HTTP heads, escaping for error messages,
// the random source, request building, and the TLS state of a connection.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <openssl/ssl.h>

#include "support/ws_test_client.hpp"

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

namespace wsbridge::testing {

// The TLS state of a TcpConn, complete here so the TCP side can destroy and move it.
struct TcpConn::Tls {
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  TlsInfo info;
  Tls() = default;
  Tls(const Tls&) = delete;
  Tls& operator=(const Tls&) = delete;
  ~Tls() {
    if (ssl != nullptr) SSL_free(ssl);
    if (ctx != nullptr) SSL_CTX_free(ctx);
  }
};

}  // namespace wsbridge::testing
