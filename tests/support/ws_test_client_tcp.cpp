// The test client's TCP side: TcpConn (sockets with deadlines) and reading HTTP responses.
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <system_error>

#include "support/ws_test_client.hpp"
#include "support/ws_test_client_util.hpp"

namespace wsbridge::testing {

using namespace client_detail;

namespace {

constexpr size_t kMaxHttpHead = size_t{64} * 1024;

HttpResponse parse_http_head(std::string_view head) {
  HttpResponse resp;
  size_t line_end = head.find("\r\n");
  const std::string_view status_line = head.substr(0, line_end);
  // "HTTP/1.1 101 Switching Protocols"
  if (status_line.substr(0, 5) != "HTTP/" || status_line.size() < 12 || status_line[8] != ' ') {
    throw std::runtime_error("malformed HTTP status line: " + printable(status_line));
  }
  const std::string_view code = status_line.substr(9, 3);
  if (!std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      (status_line.size() > 12 && status_line[12] != ' ')) {
    throw std::runtime_error("malformed HTTP status code: " + printable(status_line));
  }
  resp.status = std::stoi(std::string(code));
  if (status_line.size() > 13) resp.reason = std::string(status_line.substr(13));

  while (line_end != std::string_view::npos) {
    head.remove_prefix(line_end + 2);
    line_end = head.find("\r\n");
    const std::string_view line = head.substr(0, line_end);
    if (line.empty()) continue;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      throw std::runtime_error("malformed HTTP header line: " + printable(line));
    }
    resp.headers.emplace_back(std::string(line.substr(0, colon)),
                              std::string(trim(line.substr(colon + 1))));
  }
  return resp;
}

}  // namespace

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return v;
  }
  return std::nullopt;
}

std::vector<std::string> HttpResponse::header_values(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) out.push_back(v);
  }
  return out;
}

// ---- TcpConn ------------------------------------------------------------------------------------

TcpConn TcpConn::connect(const std::string& host, uint16_t port,
                         std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string where = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
    throw std::runtime_error("resolve " + where + ": " + gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);

  std::string last_error = "no addresses";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    // CLOEXEC matters: a server spawned by the test must not inherit client sockets, or closing
    // them here would not actually close the connection.
    const int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = std::system_category().message(errno);
      continue;
    }
    TcpConn conn(fd);
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      const short ev = wait_fd(fd, POLLOUT, deadline);
      if (ev == 0) throw std::runtime_error("connect to " + where + " timed out");
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        errno = err;
        rc = -1;
      } else {
        rc = 0;
      }
    }
    if (rc != 0) {
      last_error = std::system_category().message(errno);
      continue;
    }
    // Tests send many tiny frames and measure reactions; don't let Nagle delay them.
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return conn;
  }
  throw std::runtime_error("connect to " + where + " failed: " + last_error);
}

TcpConn TcpConn::adopt(int fd) {
  if (fd < 0) throw std::runtime_error("TcpConn::adopt: invalid fd");
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) throw_errno("fcntl(O_NONBLOCK)");
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return TcpConn(fd);
}

TcpConn::TcpConn(int fd) : fd_(fd) {}

TcpConn::~TcpConn() {
  close();
}

TcpConn::TcpConn(TcpConn&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      eof_(std::exchange(other.eof_, false)),
      buffer_(std::move(other.buffer_)),
      tls_(std::move(other.tls_)) {}

TcpConn& TcpConn::operator=(TcpConn&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    eof_ = std::exchange(other.eof_, false);
    buffer_ = std::move(other.buffer_);
    tls_ = std::move(other.tls_);
  }
  return *this;
}

int TcpConn::fd() const {
  return fd_;
}

void TcpConn::close() {
  tls_.reset();  // without a close_notify: tests close abruptly unless they shut down first
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void TcpConn::shutdown_write() {
  if (fd_ < 0) return;
  if (tls_) tls_shutdown();  // TLS' half-close is a close_notify alert
  ::shutdown(fd_, SHUT_WR);
}

void TcpConn::abort() {
  if (fd_ < 0) return;
  tls_.reset();
  const linger lg{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close();
}

void TcpConn::send_all(std::string_view bytes, std::chrono::milliseconds timeout) {
  if (fd_ < 0) throw std::runtime_error("send on a closed TcpConn");
  const auto deadline = Clock::now() + timeout;
  while (!bytes.empty()) {
    if (tls_) {
      const long n = tls_send(bytes);
      if (n > 0) {
        bytes.remove_prefix(static_cast<size_t>(n));
      } else if (wait_fd(fd_, n == -1 ? POLLIN : POLLOUT, deadline) == 0) {
        throw std::runtime_error("TLS send timed out with " + std::to_string(bytes.size()) +
                                 " bytes unsent (peer not reading?)");
      }
      continue;
    }
    // MSG_NOSIGNAL: a server that already hung up must give us EPIPE, not kill the test binary.
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait_fd(fd_, POLLOUT, deadline) == 0) {
        throw std::runtime_error("send timed out with " + std::to_string(bytes.size()) +
                                 " bytes unsent (peer not reading?)");
      }
      continue;
    }
    throw_errno("send (peer closed?)");
  }
}

TcpConn::ReadStatus TcpConn::read_some(Clock::time_point deadline) {
  if (fd_ < 0) throw std::runtime_error("read on a closed TcpConn");
  if (eof_) return ReadStatus::kEof;
  for (;;) {
    char tmp[65536];
    if (tls_) {
      const long n = tls_recv(tmp, sizeof(tmp));
      if (n > 0) {
        buffer_.append(tmp, static_cast<size_t>(n));
        return ReadStatus::kData;
      }
      if (n == 0) {
        eof_ = true;
        return ReadStatus::kEof;
      }
      if (wait_fd(fd_, n == -1 ? POLLIN : POLLOUT, deadline) == 0) return ReadStatus::kTimeout;
      continue;
    }
    const ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
    if (n > 0) {
      buffer_.append(tmp, static_cast<size_t>(n));
      return ReadStatus::kData;
    }
    if (n == 0) {
      eof_ = true;
      return ReadStatus::kEof;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (wait_fd(fd_, POLLIN, deadline) == 0) return ReadStatus::kTimeout;
      continue;
    }
    // An RST counts as "the peer closed" for every caller here.
    if (errno == ECONNRESET || errno == EPIPE || errno == ENOTCONN) {
      eof_ = true;
      return ReadStatus::kEof;
    }
    throw_errno("recv");
  }
}

std::string TcpConn::read_until_close(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (read_some(deadline) == ReadStatus::kData) {
  }
  return std::exchange(buffer_, std::string());
}

bool TcpConn::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    switch (read_some(deadline)) {
      case ReadStatus::kData:
        continue;
      case ReadStatus::kEof:
        return true;
      case ReadStatus::kTimeout:
        return false;
    }
  }
}

std::string TcpConn::read_exact(size_t n, Clock::time_point deadline, std::string_view what) {
  while (buffer_.size() < n) {
    const ReadStatus st = read_some(deadline);
    if (st == ReadStatus::kTimeout) {
      throw std::runtime_error("timed out reading " + std::string(what) + " (have " +
                               std::to_string(buffer_.size()) + " of " + std::to_string(n) +
                               " bytes)");
    }
    if (st == ReadStatus::kEof) {
      throw std::runtime_error("connection closed while reading " + std::string(what) + " (have " +
                               std::to_string(buffer_.size()) + " of " + std::to_string(n) +
                               " bytes)");
    }
  }
  std::string out = buffer_.substr(0, n);
  buffer_.erase(0, n);
  return out;
}

std::string TcpConn::read_line(Clock::time_point deadline, std::string_view what) {
  size_t pos;
  while ((pos = buffer_.find("\r\n")) == std::string::npos) {
    if (buffer_.size() > kMaxHttpHead) {
      throw std::runtime_error("overlong line while reading " + std::string(what));
    }
    const ReadStatus st = read_some(deadline);
    if (st != ReadStatus::kData) {
      throw std::runtime_error(std::string(st == ReadStatus::kTimeout ? "timed out" : "EOF") +
                               " while reading " + std::string(what) +
                               "; got: " + printable(buffer_));
    }
  }
  std::string line = buffer_.substr(0, pos);
  buffer_.erase(0, pos + 2);
  return line;
}

HttpResponse TcpConn::read_http_response(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  size_t head_end;
  while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (buffer_.size() > kMaxHttpHead) {
      throw std::runtime_error("HTTP response head larger than 64 KiB: " + printable(buffer_));
    }
    const ReadStatus st = read_some(deadline);
    if (st == ReadStatus::kTimeout) {
      throw std::runtime_error("timed out waiting for an HTTP response head; got: " +
                               printable(buffer_));
    }
    if (st == ReadStatus::kEof) {
      throw std::runtime_error("connection closed before a complete HTTP response head; got: " +
                               printable(buffer_));
    }
  }
  HttpResponse resp = parse_http_head(std::string_view(buffer_).substr(0, head_end));
  buffer_.erase(0, head_end + 4);

  // No body for 1xx (incl. 101: what follows are WebSocket frames, left in buffer_), 204, 304.
  if ((resp.status >= 100 && resp.status < 200) || resp.status == 204 || resp.status == 304) {
    return resp;
  }
  const auto te = resp.header("Transfer-Encoding");
  if (te && iequals(split(*te, ',').back(), "chunked")) {
    for (;;) {
      const std::string size_line = read_line(deadline, "chunk size");
      const std::string hex(trim(std::string_view(size_line).substr(0, size_line.find(';'))));
      size_t size = 0;
      try {
        size_t used = 0;
        size = std::stoul(hex, &used, 16);
        if (used != hex.size()) throw std::invalid_argument("junk");
      } catch (const std::exception&) {
        throw std::runtime_error("malformed chunk size line: " + printable(size_line));
      }
      if (size == 0) break;
      resp.body += read_exact(size, deadline, "chunk data");
      if (!read_line(deadline, "chunk terminator").empty()) {
        throw std::runtime_error("chunk data not followed by CRLF");
      }
    }
    while (!read_line(deadline, "chunked trailer").empty()) {
    }
    return resp;
  }
  if (const auto cl = resp.header("Content-Length")) {
    size_t len = 0;
    try {
      size_t used = 0;
      len = std::stoul(*cl, &used, 10);
      if (used != cl->size()) throw std::invalid_argument("junk");
    } catch (const std::exception&) {
      throw std::runtime_error("malformed Content-Length: " + printable(*cl));
    }
    resp.body = read_exact(len, deadline, "HTTP body");
    return resp;
  }
  // Close-delimited body.
  for (;;) {
    const ReadStatus st = read_some(deadline);
    if (st == ReadStatus::kEof) break;
    if (st == ReadStatus::kTimeout) {
      throw std::runtime_error(
          "timed out waiting for the close that ends an HTTP body without Content-Length "
          "(status " +
          std::to_string(resp.status) + "); body so far: " + printable(buffer_));
    }
  }
  resp.body = std::exchange(buffer_, std::string());
  return resp;
}

HttpResponse http_get(const std::string& host, uint16_t port, const std::string& path,
                      const std::vector<std::pair<std::string, std::string>>& extra_headers,
                      std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  TcpConn conn = TcpConn::connect(host, port, timeout);
  conn.send_all(
      build_request("GET " + path + " HTTP/1.1",
                    {{"Host", host_header(host, port)}, {"Connection", "close"}}, extra_headers),
      std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
  return conn.read_http_response(
      std::max(std::chrono::milliseconds(1),
               std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now())));
}

}  // namespace wsbridge::testing
