// The http mode's child side (bench/proxy.py, issue #18.4): its share of --connections keep-alive
// HTTP/1.1 connections to --url (http://host:port/path), each sending `GET path` in a closed loop
// (--depth requests in flight, pipelined when above 1) and timing every response. What an HTTP
// reverse proxy sustains on keep-alive connections, as wrk measures it.
//
// Before GO each connection sends one request and is ready once its response came: the whole
// path (proxy, backend connection) is up. Responses are read with a Content-Length or chunked
// (then trailers too); one without either, or bytes no request asked for, is a protocol error.
// A connection the server closes (`Connection: close`, or its end between two requests) is
// opened again and counted in http.reconnects; requests still in flight on it are counted as
// lost (errors.closed).
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "child.hpp"

namespace bench {

namespace {

// Conn::http of an http mode connection: where the response being read stands.
enum : std::uint8_t { kReadingHead = 1, kReadingLength = 2, kReadingChunked = 3 };

bool header_named(std::string_view line, std::string_view lower_name) {
  if (line.size() <= lower_name.size() || line[lower_name.size()] != ':') return false;
  for (std::size_t i = 0; i < lower_name.size(); ++i) {
    char ch = line[i];
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    if (ch != lower_name[i]) return false;
  }
  return true;
}

bool value_has(std::string_view line, std::string_view lower) {
  std::string v(line.substr(line.find(':') + 1));
  for (auto& ch : v) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  }
  return v.find(lower) != std::string::npos;
}

// The length of the complete chunked body at the start of `s` (trailers and the final CRLF
// included), or npos while it is not all there. Bodies here are small: scanned again each read.
std::size_t chunked_length(std::string_view s) {
  std::size_t pos = 0;
  while (true) {
    const std::size_t eol = s.find("\r\n", pos);
    if (eol == npos) return npos;
    const std::size_t size =
        std::strtoul(std::string(s.substr(pos, eol - pos)).c_str(), nullptr, 16);
    if (size == 0) {
      if (s.substr(eol + 2, 2) == "\r\n") return eol + 4;
      const std::size_t end = s.find("\r\n\r\n", eol);
      return end == npos ? npos : end + 4;
    }
    pos = eol + 2 + size + 2;
    if (pos > s.size()) return npos;
  }
}

}  // namespace

bool Child::http_load_start(Conn& c) {
  c.role = Role::kHttpConn;
  c.in.clear();
  c.out.clear();
  c.out_off = 0;
  c.inflight.clear();
  c.http = kReadingHead;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ++loop_.errors.connect;
    return false;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(o_.url.port);
  inet_pton(AF_INET, o_.url.host.c_str(), &dst.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    ++loop_.errors.connect;
    return false;
  }
  c.fd = fd;
  c.state = State::kConnecting;
  loop_.watch(c, EPOLLIN | EPOLLOUT);
  // The first request waits in c.out for the connection; once running, --depth of them.
  const unsigned n = pub_end_ > 0 ? o_.depth : 1;
  for (unsigned i = 0; i < n; ++i) http_load_send(c, now_ns());
  return true;
}

void Child::http_load_send(Conn& c, std::uint64_t t) {
  if (http_request_text_.empty()) {
    http_request_text_ =
        "GET " + o_.url.path + " HTTP/1.1\r\nHost: " + o_.url.host_port() + "\r\n\r\n";
  }
  c.inflight.emplace_back(c.next_id++, t);
  ++requests_;
  c.out += http_request_text_;
  if (c.state == State::kOpen && !http_flush(c)) http_load_lost(c, true);
}

void Child::http_load_close(Conn& c) {
  if (c.fd >= 0) ::close(c.fd);  // leaves the epoll set with it
  c.fd = -1;
  c.epollout = false;
  c.state = State::kClosed;
  c.out.clear();
  c.out_off = 0;
  c.in.clear();
}

void Child::http_load_lost(Conn& c, bool error) {
  const bool connected = c.state == State::kOpen;
  if (!loop_.shutting_down) {
    if (!connected) {
      ++loop_.errors.connect;
    } else if (error || !c.inflight.empty()) {
      loop_.errors.closed += c.inflight.empty() ? 1 : c.inflight.size();
    }
  }
  c.inflight.clear();
  http_load_close(c);
  if (!c.ready || !connected) {  // failed before it ever answered: not tried again
    if (c.tag != kFailed) on_closed(c, false);
    return;
  }
  ++http_reconnects_;
  if (now_ns() < pub_end_ && !http_load_start(c)) on_closed(c, false);
}

void Child::http_load_event(Conn& c, std::uint32_t events) {
  if (c.state == State::kConnecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      http_load_lost(c, true);
      return;
    }
    c.state = State::kOpen;
    if (!http_flush(c)) {
      http_load_lost(c, true);
      return;
    }
  } else if ((events & EPOLLOUT) && !http_flush(c)) {
    http_load_lost(c, true);
    return;
  }
  if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
  const ssize_t n = ::recv(c.fd, tcp_buf_.data(), tcp_buf_.size(), 0);
  if (n > 0) {
    c.in.append(tcp_buf_.data(), static_cast<std::size_t>(n));
    http_load_parse(c, now_ns());
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  http_load_lost(c, n < 0);  // reset, or the server's end (between requests: not an error)
}

void Child::http_load_parse(Conn& c, std::uint64_t t) {
  while (c.fd >= 0 && !c.in.empty()) {
    if (c.inflight.empty()) {
      ++loop_.errors.protocol;  // bytes no request asked for
      http_load_lost(c, false);
      return;
    }
    if (c.http == kReadingHead) {
      const std::size_t end = c.in.find("\r\n\r\n");
      if (end == npos) {
        if (c.in.size() > 65536) {
          ++loop_.errors.protocol;
          http_load_lost(c, false);
        }
        return;
      }
      const std::string_view head(c.in.data(), end);
      if (head.size() < 12 || !head.starts_with("HTTP/1.")) {
        ++loop_.errors.protocol;
        http_load_lost(c, false);
        return;
      }
      c.status = std::atoi(std::string(head.substr(9, 3)).c_str());
      c.keep_alive = head[7] == '1';
      c.body_left = -1;
      bool chunked = false;
      for (std::size_t pos = head.find("\r\n"); pos != npos && pos + 2 < head.size();) {
        const std::size_t eol = head.find("\r\n", pos + 2);
        const std::string_view line =
            head.substr(pos + 2, (eol == npos ? head.size() : eol) - pos - 2);
        pos = eol;
        if (header_named(line, "content-length")) {
          c.body_left = std::strtoll(std::string(line.substr(15)).c_str(), nullptr, 10);
        } else if (header_named(line, "transfer-encoding")) {
          chunked = value_has(line, "chunked");
        } else if (header_named(line, "connection")) {
          if (value_has(line, "close")) c.keep_alive = false;
          if (value_has(line, "keep-alive")) c.keep_alive = true;
        }
      }
      c.in.erase(0, end + 4);
      if (chunked) {
        c.http = kReadingChunked;
      } else if (c.body_left >= 0) {
        c.http = kReadingLength;
      } else {
        ++loop_.errors.protocol;  // a body that ends with the connection: not keep-alive
        http_load_lost(c, false);
        return;
      }
    }
    std::size_t used = 0;
    if (c.http == kReadingLength) {
      if (c.in.size() < static_cast<std::size_t>(c.body_left)) return;
      used = static_cast<std::size_t>(c.body_left);
    } else {
      used = chunked_length(c.in);
      if (used == npos) return;
    }
    c.in.erase(0, used);
    c.http = kReadingHead;
    http_load_response(c, t);
  }
}

void Child::http_load_response(Conn& c, std::uint64_t t) {
  const std::uint64_t sent = c.inflight.front().second;
  c.inflight.erase(c.inflight.begin());
  if (!c.ready) {
    mark_ready(c);  // the probe: not counted
  } else {
    ++responses_;
    if (c.status >= 200 && c.status < 300) {
      ++ok_;
    } else {
      ++non2xx_;
      if (o_.procs == 1 && non2xx_ <= 3) {
        std::fprintf(stderr, "wsbridge-loadgen: HTTP %d from %s\n", c.status,
                     o_.url.host_port().c_str());
      }
    }
    if (sent >= window_start_ && sent <= pub_end_) hist_.record(t - sent);
    if (t >= window_start_ && t <= pub_end_) ++in_window_;
  }
  if (!c.keep_alive) {
    http_load_lost(c, false);  // in flight after this one: lost (pipelined past a close)
    return;
  }
  if (t < pub_end_) http_load_send(c, now_ns());
}

int Child::run_http_load() {
  ramp(conns_.size());
  report("READY", base_kv());
  const std::string go = wait_command();  // GO <t0>
  t0_ = std::strtoull(go.c_str() + 3, nullptr, 10);
  window_start_ = t0_ + static_cast<std::uint64_t>(o_.warmup * kSec);
  pub_end_ = t0_ + static_cast<std::uint64_t>(o_.duration * kSec);
  while (now_ns() < t0_) loop_.poll(1);
  const std::uint64_t cpu_start = cpu_us();
  requests_ = 0;  // the probes are not counted
  for (auto& c : conns_) {
    if (c.fd < 0 || !c.ready) continue;
    for (unsigned d = 0; d < o_.depth; ++d) http_load_send(c, now_ns());
  }
  while (now_ns() < pub_end_) loop_.poll(10);
  auto pending = [&] {
    std::size_t n = 0;
    for (const auto& c : conns_) n += c.fd >= 0 ? c.inflight.size() : 0;
    return n;
  };
  const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(o_.drain_max * kSec);
  while (pending() > 0 && now_ns() < deadline) loop_.poll(10);
  Kv kv = base_kv();
  kv["requests"] = std::to_string(requests_);
  kv["responses"] = std::to_string(responses_);
  kv["ok"] = std::to_string(ok_);
  kv["non2xx"] = std::to_string(non2xx_);
  kv["unanswered"] = std::to_string(pending());
  kv["unmatched"] = "0";
  kv["in_window"] = std::to_string(in_window_);
  kv["run_cpu_us"] = std::to_string(cpu_us() - cpu_start);
  kv["hist"] = hist_.serialize();
  report("RESULT", kv);
  (void)wait_command();  // END
  loop_.shutting_down = true;
  for (auto& c : conns_) http_load_close(c);
  return 0;
}

}  // namespace bench
