#include "support/ws_test_client.hpp"

#include "wsbridge/base64.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <random>
#include <system_error>

namespace wsbridge::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr size_t kMaxHttpHead = size_t{64} * 1024;
constexpr std::string_view kDeflateTail("\x00\x00\xff\xff", 4);

[[noreturn]] void throw_errno(const std::string& what, int err = errno) {
  throw std::runtime_error(what + ": " + std::system_category().message(err));
}

// Remaining time until `deadline` as a poll() timeout; rounds up so we never busy-loop on a
// sub-millisecond remainder.
int poll_timeout_ms(Clock::time_point deadline) {
  const auto now = Clock::now();
  if (now >= deadline) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

// Waits for `events` on fd. Returns revents, or 0 on timeout.
short wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd pfd{fd, events, 0};
    const int r = ::poll(&pfd, 1, poll_timeout_ms(deadline));
    if (r > 0) return pfd.revents;
    if (r == 0) return 0;
    if (errno != EINTR) throw_errno("poll");
  }
}

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

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

// Error messages quote what the server actually sent; escape it so binary junk stays readable.
std::string printable(std::string_view s, size_t max = 300) {
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

// ---- Pure helpers -------------------------------------------------------------------------------

std::string_view opcode_name(Opcode op) {
  switch (op) {
    case Opcode::kContinuation:
      return "CONTINUATION";
    case Opcode::kText:
      return "TEXT";
    case Opcode::kBinary:
      return "BINARY";
    case Opcode::kClose:
      return "CLOSE";
    case Opcode::kPing:
      return "PING";
    case Opcode::kPong:
      return "PONG";
  }
  return "RESERVED";
}

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

std::string websocket_accept_key(std::string_view client_key) {
  std::string input(client_key);
  input += kWebSocketGuid;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(input.data(), input.size(), md, &md_len, EVP_sha1(), nullptr) != 1) {
    throw std::runtime_error("EVP_Digest(SHA-1) failed");
  }
  return base64_encode(std::string_view(reinterpret_cast<const char*>(md), md_len));
}

std::string random_websocket_key() {
  std::string raw(16, '\0');
  for (char& c : raw) c = static_cast<char>(rng()() & 0xff);
  return base64_encode(raw);
}

MaskKey random_mask_key() {
  const uint32_t v = rng()();
  return {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v >> 16),
          static_cast<uint8_t>(v >> 24)};
}

std::string encode_raw_frame(uint8_t first_byte, std::string_view payload,
                             const std::optional<MaskKey>& mask_key) {
  std::string out;
  out.reserve(payload.size() + 14);
  out.push_back(static_cast<char>(first_byte));
  const uint8_t mask_bit = mask_key ? 0x80 : 0x00;
  const uint64_t len = payload.size();
  if (len < 126) {
    out.push_back(static_cast<char>(mask_bit | len));
  } else if (len <= 0xffff) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(len >> 8));
    out.push_back(static_cast<char>(len & 0xff));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>((len >> shift) & 0xff));
    }
  }
  if (mask_key) {
    out.append(reinterpret_cast<const char*>(mask_key->data()), 4);
    const size_t start = out.size();
    out.append(payload);
    for (size_t i = 0; i < payload.size(); ++i) {
      out[start + i] = static_cast<char>(static_cast<uint8_t>(out[start + i]) ^ (*mask_key)[i % 4]);
    }
  } else {
    out.append(payload);
  }
  return out;
}

std::string encode_frame(Opcode op, std::string_view payload, bool fin,
                         const std::optional<MaskKey>& mask_key, bool rsv1) {
  const uint8_t first = static_cast<uint8_t>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) |
                                             (static_cast<uint8_t>(op) & 0x0f));
  return encode_raw_frame(first, payload, mask_key);
}

std::optional<Frame> decode_frame(std::string& buffer) {
  if (buffer.size() < 2) return std::nullopt;
  const auto* p = reinterpret_cast<const uint8_t*>(buffer.data());
  size_t pos = 2;
  uint64_t len = p[1] & 0x7f;
  if (len == 126) {
    if (buffer.size() < 4) return std::nullopt;
    len = (uint64_t{p[2]} << 8) | p[3];
    pos = 4;
  } else if (len == 127) {
    if (buffer.size() < 10) return std::nullopt;
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
    pos = 10;
    if (len >> 63) throw std::runtime_error("frame has 64-bit length with the MSB set");
  }
  if (len > kMaxFramePayload) {
    throw std::runtime_error("frame payload length " + std::to_string(len) +
                             " exceeds the test client's limit");
  }
  const bool masked = (p[1] & 0x80) != 0;
  MaskKey key{};
  if (masked) {
    if (buffer.size() < pos + 4) return std::nullopt;
    std::memcpy(key.data(), p + pos, 4);
    pos += 4;
  }
  if (buffer.size() < pos + len) return std::nullopt;

  Frame f{static_cast<Opcode>(p[0] & 0x0f), (p[0] & 0x80) != 0, (p[0] & 0x40) != 0,
          buffer.substr(pos, static_cast<size_t>(len))};
  f.rsv2 = (p[0] & 0x20) != 0;
  f.rsv3 = (p[0] & 0x10) != 0;
  f.masked = masked;
  if (masked) {
    for (size_t i = 0; i < f.payload.size(); ++i) {
      f.payload[i] = static_cast<char>(static_cast<uint8_t>(f.payload[i]) ^ key[i % 4]);
    }
  }
  buffer.erase(0, pos + static_cast<size_t>(len));
  return f;
}

// ---- Deflate ------------------------------------------------------------------------------------

struct Deflater::Impl {
  z_stream zs{};
};

Deflater::Deflater(int window_bits) : impl_(std::make_unique<Impl>()) {
  window_bits = std::clamp(window_bits, 9, 15);
  if (deflateInit2(&impl_->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -window_bits, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
}

Deflater::~Deflater() {
  if (impl_) deflateEnd(&impl_->zs);
}
Deflater::Deflater(Deflater&&) noexcept = default;
Deflater& Deflater::operator=(Deflater&& other) noexcept {
  if (this != &other) {
    if (impl_) deflateEnd(&impl_->zs);
    impl_ = std::move(other.impl_);
  }
  return *this;
}

std::string Deflater::compress(std::string_view data) {
  if (!impl_) throw std::runtime_error("Deflater used after move");
  z_stream& zs = impl_->zs;
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  char chunk[16384];
  // With Z_SYNC_FLUSH all input is consumed and flushed once a call leaves output space unused.
  do {
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof(chunk);
    const int rc = deflate(&zs, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      throw std::runtime_error("deflate failed: " + std::to_string(rc));
    }
    out.append(chunk, sizeof(chunk) - zs.avail_out);
  } while (zs.avail_out == 0 || zs.avail_in != 0);
  // An empty message right after a flush makes zlib emit nothing at all; RFC 7692 7.2.3.6
  // allows a single 0x00 byte (an empty stored block once the tail is appended) for that case.
  if (out.empty() && data.empty()) return std::string(1, '\0');
  if (out.size() < 4 || std::string_view(out).substr(out.size() - 4) != kDeflateTail) {
    throw std::runtime_error("deflate output does not end with 00 00 ff ff");
  }
  out.resize(out.size() - 4);
  return out;
}

void Deflater::reset() {
  if (impl_) deflateReset(&impl_->zs);
}

struct Inflater::Impl {
  z_stream zs{};
};

Inflater::Inflater() : impl_(std::make_unique<Impl>()) {
  // Always 15: a larger window than the server's max is always able to inflate its output.
  if (inflateInit2(&impl_->zs, -15) != Z_OK) throw std::runtime_error("inflateInit2 failed");
}
Inflater::~Inflater() {
  if (impl_) inflateEnd(&impl_->zs);
}
Inflater::Inflater(Inflater&&) noexcept = default;
Inflater& Inflater::operator=(Inflater&& other) noexcept {
  if (this != &other) {
    if (impl_) inflateEnd(&impl_->zs);
    impl_ = std::move(other.impl_);
  }
  return *this;
}

std::string Inflater::decompress(std::string_view payload, size_t max_output) {
  if (!impl_) throw std::runtime_error("Inflater used after move");
  z_stream& zs = impl_->zs;
  std::string in(payload);
  in.append(kDeflateTail);
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  char chunk[16384];
  // Keep calling inflate until all input is consumed *and* a call left output space unused;
  // otherwise zlib may still hold decoded bytes.
  for (;;) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof(chunk);
    const int rc = inflate(&zs, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) {
      throw std::runtime_error(std::string("inflate failed: ") + (zs.msg ? zs.msg : "?") + " (rc " +
                               std::to_string(rc) + ")");
    }
    out.append(chunk, sizeof(chunk) - zs.avail_out);
    if (out.size() > max_output) throw std::runtime_error("inflated message too large");
    if (rc == Z_STREAM_END) {
      // The sender set BFINAL (legal per RFC 7692 7.2.3.3); the next message starts a new
      // stream, and the rest of the input is just our appended tail.
      inflateReset(&zs);
      break;
    }
    if (zs.avail_out != 0 && (zs.avail_in == 0 || rc == Z_BUF_ERROR)) break;
  }
  return out;
}

void Inflater::reset() {
  if (impl_) inflateReset(&impl_->zs);
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

TcpConn::~TcpConn() {
  close();
}

TcpConn::TcpConn(TcpConn&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      eof_(std::exchange(other.eof_, false)),
      buffer_(std::move(other.buffer_)) {}

TcpConn& TcpConn::operator=(TcpConn&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    eof_ = std::exchange(other.eof_, false);
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

int TcpConn::fd() const {
  return fd_;
}

void TcpConn::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void TcpConn::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void TcpConn::abort() {
  if (fd_ < 0) return;
  const linger lg{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close();
}

void TcpConn::send_all(std::string_view bytes, std::chrono::milliseconds timeout) {
  if (fd_ < 0) throw std::runtime_error("send on a closed TcpConn");
  const auto deadline = Clock::now() + timeout;
  while (!bytes.empty()) {
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

// ---- WsClient -----------------------------------------------------------------------------------

std::string build_handshake_request(const ClientOptions& opts) {
  std::vector<std::pair<std::string, std::string>> headers = {
      {"Host", host_header(opts.host, opts.port)},
      {"Upgrade", "websocket"},
      {"Connection", "Upgrade"},
  };
  if (!opts.key.empty()) headers.emplace_back("Sec-WebSocket-Key", opts.key);
  if (!opts.version.empty()) headers.emplace_back("Sec-WebSocket-Version", opts.version);
  if (opts.offer_deflate) {
    headers.emplace_back("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits");
  }
  return build_request("GET " + opts.path + " HTTP/1.1", std::move(headers), opts.extra_headers);
}

WsClient::WsClient(TcpConn conn) : tcp_(std::move(conn)) {}
WsClient::~WsClient() = default;
WsClient::WsClient(WsClient&&) noexcept = default;
WsClient& WsClient::operator=(WsClient&&) noexcept = default;

WsClient WsClient::connect(const ClientOptions& opts) {
  const auto deadline = Clock::now() + opts.timeout;
  WsClient client(TcpConn::connect(opts.host, opts.port, opts.timeout));
  client.tcp_.send_all(build_handshake_request(opts), opts.timeout);
  HttpResponse resp = client.tcp_.read_http_response(
      std::max(std::chrono::milliseconds(1),
               std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now())));

  const std::string where = opts.host + ":" + std::to_string(opts.port) + opts.path;
  if (resp.status != 101) {
    std::string msg = "WebSocket handshake to " + where + " answered " +
                      std::to_string(resp.status) + " " + resp.reason;
    if (!resp.body.empty()) msg += ": " + printable(resp.body, 200);
    throw HandshakeError(msg, std::move(resp));
  }
  // RFC 6455 4.1: the client must fail the connection unless all of these hold.
  const auto upgrade = resp.header("Upgrade");
  if (!upgrade || !iequals(trim(*upgrade), "websocket")) {
    throw HandshakeError("101 response without 'Upgrade: websocket' from " + where,
                         std::move(resp));
  }
  const auto connection = resp.header("Connection");
  bool has_upgrade_token = false;
  if (connection) {
    for (auto tok : split(*connection, ',')) has_upgrade_token |= iequals(tok, "upgrade");
  }
  if (!has_upgrade_token) {
    throw HandshakeError("101 response without 'Connection: Upgrade' from " + where,
                         std::move(resp));
  }
  const auto accept = resp.header("Sec-WebSocket-Accept");
  const std::string expected = websocket_accept_key(opts.key);
  if (!accept || *accept != expected) {
    throw HandshakeError("wrong Sec-WebSocket-Accept from " + where + ": got '" +
                             (accept ? *accept : std::string("<missing>")) + "', expected '" +
                             expected + "'",
                         std::move(resp));
  }

  // Extensions: we can only accept what we offered (offer_deflate or a hand-written header).
  bool offered_deflate = opts.offer_deflate;
  for (const auto& [name, value] : opts.extra_headers) {
    if (iequals(name, "Sec-WebSocket-Extensions") &&
        value.find("permessage-deflate") != std::string::npos) {
      offered_deflate = true;
    }
  }
  std::optional<DeflateParams> deflate;
  for (const std::string& value : resp.header_values("Sec-WebSocket-Extensions")) {
    for (std::string_view ext : split(value, ',')) {
      if (ext.empty()) continue;
      const auto parts = split(ext, ';');
      if (parts[0] != "permessage-deflate" || !offered_deflate) {
        throw HandshakeError("server accepted an extension we did not offer: " + std::string(ext),
                             std::move(resp));
      }
      if (deflate) {
        throw HandshakeError("server accepted permessage-deflate twice", std::move(resp));
      }
      DeflateParams params;
      for (size_t i = 1; i < parts.size(); ++i) {
        const size_t eq = parts[i].find('=');
        const std::string_view key = trim(parts[i].substr(0, eq));
        std::string_view val =
            eq == std::string_view::npos ? std::string_view() : trim(parts[i].substr(eq + 1));
        if (val.size() >= 2 && val.front() == '"' && val.back() == '"') {
          val = val.substr(1, val.size() - 2);
        }
        auto parse_bits = [&]() {
          const int bits = val.empty() ? -1 : std::atoi(std::string(val).c_str());
          if (bits < 8 || bits > 15) {
            throw HandshakeError("bad window bits in " + std::string(ext), std::move(resp));
          }
          return bits;
        };
        if (key == "server_no_context_takeover") {
          params.server_no_context_takeover = true;
        } else if (key == "client_no_context_takeover") {
          params.client_no_context_takeover = true;
        } else if (key == "server_max_window_bits") {
          params.server_max_window_bits = parse_bits();
        } else if (key == "client_max_window_bits") {
          params.client_max_window_bits = parse_bits();
        } else {
          throw HandshakeError("unknown permessage-deflate parameter: " + std::string(key),
                               std::move(resp));
        }
      }
      deflate = params;
    }
  }
  if (deflate) client.setup_deflate(*deflate);
  client.handshake_ = std::move(resp);
  return client;
}

WsClient WsClient::adopt(TcpConn conn, std::optional<DeflateParams> deflate) {
  WsClient client(std::move(conn));
  if (deflate) client.setup_deflate(*deflate);
  return client;
}

void WsClient::setup_deflate(const DeflateParams& params) {
  deflate_ = params;
  deflater_.emplace(params.client_max_window_bits);
  inflater_.emplace();
}

const HttpResponse& WsClient::handshake_response() const {
  return handshake_;
}
bool WsClient::deflate_negotiated() const {
  return deflate_.has_value();
}
void WsClient::set_auto_pong(bool on) {
  auto_pong_ = on;
}
int WsClient::pings_received() const {
  return pings_;
}
int WsClient::pongs_received() const {
  return pongs_;
}
TcpConn& WsClient::tcp() {
  return tcp_;
}

void WsClient::send_frame(Opcode op, std::string_view payload, bool fin, bool mask, bool rsv1) {
  tcp_.send_all(encode_frame(
      op, payload, fin, mask ? std::optional<MaskKey>(random_mask_key()) : std::nullopt, rsv1));
  if (op == Opcode::kClose) close_sent_ = true;
}

void WsClient::send_raw_frame(uint8_t first_byte, std::string_view payload, bool mask) {
  tcp_.send_all(encode_raw_frame(first_byte, payload,
                                 mask ? std::optional<MaskKey>(random_mask_key()) : std::nullopt));
  if ((first_byte & 0x0f) == static_cast<uint8_t>(Opcode::kClose)) close_sent_ = true;
}

std::string WsClient::compress(std::string_view data) {
  if (!deflater_) throw std::runtime_error("compress(): permessage-deflate not negotiated");
  std::string out = deflater_->compress(data);
  if (deflate_->client_no_context_takeover) deflater_->reset();
  return out;
}

void WsClient::send_text(std::string_view s, bool compress_it) {
  if (compress_it && deflater_) {
    send_frame(Opcode::kText, compress(s), true, true, true);
  } else {
    send_frame(Opcode::kText, s);
  }
}

void WsClient::send_binary(std::string_view s, bool compress_it) {
  if (compress_it && deflater_) {
    send_frame(Opcode::kBinary, compress(s), true, true, true);
  } else {
    send_frame(Opcode::kBinary, s);
  }
}

void WsClient::send_close(uint16_t code, std::string_view reason) {
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xff));
  payload.append(reason);
  send_frame(Opcode::kClose, payload);
}

std::optional<Frame> WsClient::next_frame(Clock::time_point deadline) {
  for (;;) {
    if (auto f = decode_frame(tcp_.buffer())) {
      if (f->opcode == Opcode::kPing) ++pings_;
      if (f->opcode == Opcode::kPong) ++pongs_;
      return f;
    }
    switch (tcp_.read_some(deadline)) {
      case TcpConn::ReadStatus::kData:
        break;
      case TcpConn::ReadStatus::kEof:
        if (!tcp_.buffer().empty()) {
          throw std::runtime_error("connection closed in the middle of a frame (" +
                                   std::to_string(tcp_.buffer().size()) + " bytes pending)");
        }
        return std::nullopt;
      case TcpConn::ReadStatus::kTimeout:
        throw std::runtime_error("timed out waiting for a WebSocket frame" +
                                 (tcp_.buffer().empty()
                                      ? std::string()
                                      : " (partial frame: " + printable(tcp_.buffer(), 40) + ")"));
    }
  }
}

Frame WsClient::read_frame(std::chrono::milliseconds timeout) {
  auto f = next_frame(Clock::now() + timeout);
  if (!f) throw std::runtime_error("connection closed while waiting for a WebSocket frame");
  return std::move(*f);
}

uint16_t WsClient::Message::close_code() const {
  if (data.size() < 2) return 1005;
  return static_cast<uint16_t>((static_cast<uint8_t>(data[0]) << 8) |
                               static_cast<uint8_t>(data[1]));
}

std::string WsClient::Message::close_reason() const {
  return data.size() > 2 ? data.substr(2) : std::string();
}

WsClient::Message WsClient::read_message(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::optional<Opcode> msg_opcode;
  bool compressed = false;
  std::string data;
  for (;;) {
    auto f = next_frame(deadline);
    if (!f) throw std::runtime_error("connection closed while waiting for a WebSocket message");
    if (f->masked) throw std::runtime_error("server sent a masked frame (RFC 6455 5.1)");
    if (f->rsv2 || f->rsv3) throw std::runtime_error("server frame has RSV2/RSV3 set");
    const auto op = static_cast<uint8_t>(f->opcode);
    if (op >= 8) {  // control frame
      if (!f->fin || f->payload.size() > 125 || f->rsv1) {
        throw std::runtime_error(
            "server sent an invalid control frame (" + std::string(opcode_name(f->opcode)) +
            ", fin=" + std::to_string(f->fin) + ", rsv1=" + std::to_string(f->rsv1) +
            ", len=" + std::to_string(f->payload.size()) + ")");
      }
      switch (f->opcode) {
        case Opcode::kPing:
          if (auto_pong_) send_frame(Opcode::kPong, f->payload);
          continue;
        case Opcode::kPong:
          continue;
        case Opcode::kClose: {
          Message m{Opcode::kClose, std::move(f->payload)};
          if (m.data.size() == 1) throw std::runtime_error("server close frame with 1-byte body");
          close_received_ = m.close_code();
          return m;
        }
        default:
          throw std::runtime_error("server sent reserved control opcode " + std::to_string(op));
      }
    }
    if (f->opcode == Opcode::kContinuation) {
      if (!msg_opcode) throw std::runtime_error("server sent CONTINUATION without a message");
      if (f->rsv1) throw std::runtime_error("server set RSV1 on a CONTINUATION frame");
    } else if (f->opcode == Opcode::kText || f->opcode == Opcode::kBinary) {
      if (msg_opcode) {
        throw std::runtime_error("server started a new message before finishing the previous one");
      }
      msg_opcode = f->opcode;
      compressed = f->rsv1;
      if (compressed && !inflater_) {
        throw std::runtime_error("server set RSV1 but permessage-deflate was not negotiated");
      }
    } else {
      throw std::runtime_error("server sent reserved data opcode " + std::to_string(op));
    }
    data += f->payload;
    if (data.size() > kMaxFramePayload) throw std::runtime_error("message too large");
    if (!f->fin) continue;

    if (compressed) {
      data = inflater_->decompress(data);
      if (deflate_->server_no_context_takeover) inflater_->reset();
    }
    return Message{*msg_opcode, std::move(data)};
  }
}

uint16_t WsClient::wait_close(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::optional<uint16_t> code = close_received_;
  while (!code) {
    auto f = next_frame(deadline);
    if (!f) return 1006;
    if (f->opcode == Opcode::kPing) {
      if (auto_pong_ && !close_sent_) {
        try {
          send_frame(Opcode::kPong, f->payload);
        } catch (const std::runtime_error&) {
          // The server may already be tearing down; the close is what we're waiting for.
        }
      }
      continue;
    }
    if (f->opcode != Opcode::kClose) continue;  // data/pong frames are skipped
    if (f->payload.size() == 1) throw std::runtime_error("server close frame with 1-byte body");
    code = f->payload.size() < 2
               ? uint16_t{1005}
               : static_cast<uint16_t>((static_cast<uint8_t>(f->payload[0]) << 8) |
                                       static_cast<uint8_t>(f->payload[1]));
    close_received_ = code;
  }
  if (!close_sent_) {
    try {
      // Echo the code (RFC 6455 5.5.1); 1005 must never appear on the wire, so echo empty then.
      if (*code == 1005) {
        send_frame(Opcode::kClose, "");
      } else {
        send_close(*code);
      }
    } catch (const std::runtime_error&) {
      // Server closed the socket right after its close frame; nothing left to echo to.
      close_sent_ = true;
    }
  }
  return *code;
}

}  // namespace wsbridge::testing
