// The load generator's WebSocket client, send side and loop: URLs, connecting with the upgrade
// request, masked frames out, closing, and the epoll dispatch.
#include "ws_client.hpp"

#include "wsbridge/base64.hpp"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace bench {

namespace {

constexpr std::size_t kReadBuffer = 256 * 1024;
constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

std::string base64(const unsigned char* data, std::size_t len) {
  return wsbridge::base64_encode(std::string_view(reinterpret_cast<const char*>(data), len));
}

std::string accept_for(const std::string& key) {
  const std::string text = key + std::string(kGuid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EVP_Digest(text.data(), text.size(), digest, &digest_len, EVP_sha1(), nullptr);
  return base64(digest, digest_len);
}

std::uint64_t xorshift(std::uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

}  // namespace

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

bool Url::parse(std::string_view text, std::string_view scheme, Url& out) {
  const std::string prefix = std::string(scheme) + "://";
  const std::string tls_prefix = std::string(scheme) + "s://";
  out.tls = scheme == "ws" && text.starts_with(tls_prefix);
  if (!out.tls && !text.starts_with(prefix)) return false;
  text.remove_prefix(out.tls ? tls_prefix.size() : prefix.size());
  const std::size_t slash = text.find('/');
  std::string_view hostport = text.substr(0, slash);
  out.path = slash == std::string_view::npos ? "/" : std::string(text.substr(slash));
  const std::size_t colon = hostport.rfind(':');
  if (colon == std::string_view::npos) return false;
  out.host = std::string(hostport.substr(0, colon));
  if (out.host == "localhost") out.host = "127.0.0.1";
  const int port = std::atoi(std::string(hostport.substr(colon + 1)).c_str());
  if (port <= 0 || port > 65535) return false;
  out.port = static_cast<std::uint16_t>(port);
  return true;
}

bool find_int(std::string_view text, std::string_view key, std::int64_t& out, std::size_t from) {
  const std::size_t pos = text.find(key, from);
  if (pos == std::string_view::npos) return false;
  std::size_t i = pos + key.size();
  while (i < text.size() && (text[i] == ' ' || text[i] == '"')) ++i;
  bool neg = false;
  if (i < text.size() && text[i] == '-') {
    neg = true;
    ++i;
  }
  if (i >= text.size() || text[i] < '0' || text[i] > '9') return false;
  std::int64_t v = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') v = v * 10 + (text[i++] - '0');
  out = neg ? -v : v;
  return true;
}

bool has(std::string_view text, std::string_view needle) {
  return text.find(needle) != std::string_view::npos;
}

Loop::Loop(Handler& handler) : handler_(handler), rbuf_(kReadBuffer) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (getrandom(&rng_, sizeof rng_, 0) != sizeof rng_ || rng_ == 0) rng_ = 0x9E3779B97F4A7C15ull;
}

Loop::~Loop() {
  if (epfd_ >= 0) ::close(epfd_);
  if (tls_ctx_ != nullptr) SSL_CTX_free(tls_ctx_);
}

bool Loop::connect_ws(Conn& c, const Url& url) {
  c.role = Role::kWebSocket;
  c.in.clear();
  c.out.clear();
  c.out_off = 0;
  c.close_sent = false;
  c.we_closed = false;
  c.deflate = Deflate::kNone;
  c.frag_compressed = false;
  c.inflater.reset();
  c.mq.clear();
  c.mq_state = 0;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ++errors.connect;
    c.state = State::kClosed;
    return false;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (source_addresses_ > 1) {
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7F000001u + (next_source_++ % source_addresses_));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
      ::close(fd);
      ++errors.connect;
      c.state = State::kClosed;
      return false;
    }
  }
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(url.port);
  inet_pton(AF_INET, url.host.c_str(), &dst.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    ++errors.connect;
    c.state = State::kClosed;
    return false;
  }
  c.fd = fd;
  c.state = State::kConnecting;
  if (url.tls && !start_tls(c)) {
    ::close(fd);
    c.fd = -1;
    ++errors.tls;
    c.state = State::kClosed;
    return false;
  }

  unsigned char raw_key[16];
  for (int i = 0; i < 16; i += 8) {
    const std::uint64_t r = xorshift(rng_);
    std::memcpy(raw_key + i, &r, 8);
  }
  const std::string key = base64(raw_key, sizeof raw_key);
  c.accept = accept_for(key);
  c.out =
      "GET " + url.path + " HTTP/1.1\r\nHost: " + url.host_port() +
      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
      "\r\nSec-WebSocket-Version: 13\r\n" +
      // As browsers offer it: the server may pick its window and context takeover.
      (offer_deflate_ ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                      : "") +
      (subprotocol_.empty() ? "" : "Sec-WebSocket-Protocol: " + subprotocol_ + "\r\n") + "\r\n";
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.ptr = &c;
  c.epollout = true;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
  return true;
}

void Loop::watch(Conn& c, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = &c;
  c.epollout = (events & EPOLLOUT) != 0;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev);
}

void Loop::set_events(Conn& c, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = &c;
  c.epollout = (events & EPOLLOUT) != 0;
  epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
}

void Loop::queue_frame(Conn& c, std::uint8_t opcode, std::string_view payload) {
  std::uint8_t head[14];
  std::size_t n = 0;
  head[n++] = static_cast<std::uint8_t>(0x80 | opcode);
  const std::size_t len = payload.size();
  if (len < 126) {
    head[n++] = static_cast<std::uint8_t>(0x80 | len);
  } else if (len <= 0xFFFF) {
    head[n++] = 0x80 | 126;
    head[n++] = static_cast<std::uint8_t>(len >> 8);
    head[n++] = static_cast<std::uint8_t>(len);
  } else {
    head[n++] = 0x80 | 127;
    for (int i = 7; i >= 0; --i) head[n++] = static_cast<std::uint8_t>(len >> (8 * i));
  }
  const auto mask = static_cast<std::uint32_t>(xorshift(rng_));
  std::uint8_t key[4];
  std::memcpy(key, &mask, 4);
  std::memcpy(head + n, key, 4);
  n += 4;
  if (c.out_off > 0 && c.out_off == c.out.size()) {
    c.out.clear();
    c.out_off = 0;
  }
  c.out.append(reinterpret_cast<const char*>(head), n);
  const std::size_t start = c.out.size();
  c.out.append(payload);
  char* p = c.out.data() + start;
  for (std::size_t i = 0; i < len; ++i) p[i] = static_cast<char>(p[i] ^ key[i & 3]);
}

bool Loop::flush(Conn& c) {
  if (c.fd < 0) return false;
  // The upgrade request goes first, once connected (and TLS is up).
  if (c.state == State::kConnecting || c.state == State::kTls) return true;
  while (c.out_off < c.out.size()) {
    const ssize_t n = send_some(c, c.out.data() + c.out_off, c.out.size() - c.out_off);
    if (n > 0) {
      c.out_off += static_cast<std::size_t>(n);
      continue;
    }
    if (n == -1) {
      if (!c.epollout) set_events(c, EPOLLIN | EPOLLOUT);
      return true;
    }
    fail(c, c.state == State::kOpen);
    return false;
  }
  c.out.clear();
  c.out_off = 0;
  if (c.epollout) set_events(c, EPOLLIN);
  return true;
}

void Loop::close(Conn& c, bool graceful) {
  if (c.fd < 0) return;
  const bool was_open = c.state == State::kOpen;
  if (graceful && was_open && !c.close_sent) {
    const char code[2] = {static_cast<char>(1000 >> 8), static_cast<char>(1000 & 0xFF)};
    queue_frame(c, 0x8, std::string_view(code, 2));
    c.close_sent = true;
    const ssize_t ignored = send_some(c, c.out.data() + c.out_off, c.out.size() - c.out_off);
    (void)ignored;
  }
  // No TIME_WAIT on our side: many rounds of 20,000 connections would exhaust the port range.
  c.we_closed = true;  // release(): SO_LINGER 0
  release(c);
  c.state = State::kClosed;
  c.out.clear();
  c.out.shrink_to_fit();
  c.in.clear();
  c.in.shrink_to_fit();
  c.inflater.reset();
  handler_.on_closed(c, was_open);
}

void Loop::close_after_reply(Conn& c) {
  if (c.fd < 0 || c.state != State::kOpen || c.close_sent) return;
  const char code[2] = {static_cast<char>(1000 >> 8), static_cast<char>(1000 & 0xFF)};
  queue_frame(c, 0x8, std::string_view(code, 2));
  c.close_sent = true;
  c.we_closed = true;
  flush(c);
}

void Loop::fail(Conn& c, bool was_open) {
  if (c.fd < 0) return;
  if (!shutting_down) {
    if (c.state == State::kConnecting) {
      ++errors.connect;
    } else if (c.state == State::kTls) {
      ++errors.tls;
    } else if (c.state == State::kHandshaking) {
      ++errors.handshake;
    } else if (was_open && !c.we_closed) {
      ++errors.closed;
    }
  }
  release(c);
  c.state = State::kClosed;
  c.inflater.reset();
  handler_.on_closed(c, was_open);
}

int Loop::poll(int timeout_ms) {
  epoll_event events[512];
  const int n = epoll_wait(epfd_, events, 512, timeout_ms);
  for (int i = 0; i < n; ++i) {
    Conn& c = *static_cast<Conn*>(events[i].data.ptr);
    if (c.fd < 0) continue;
    if (c.role == Role::kWebSocket) {
      on_ws_event(c, events[i].events);
    } else {
      handler_.on_fd(c, events[i].events);
    }
  }
  return n < 0 ? 0 : n;
}

}  // namespace bench
