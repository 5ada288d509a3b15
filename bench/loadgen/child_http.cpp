// The fanout and idle modes over HTTP instead of a WebSocket (--transport), for the fallback
// phase of bench/run (bench/fallback.py, issue #16.6):
//
//   sse   wsbridge's SSE transport (docs/FALLBACK.md): GET /_wsbridge/sse/<route> is the stream
//         (its first event the welcome with the session token); when the server ends it (after
//         sse_byte_limit) the stream is opened again with ?s=TOKEN&last=N
//   poll  wsbridge's long-polling: GET /_wsbridge/poll/<route> opens the session, then
//         GET ?s=TOKEN&last=N again as soon as each answer (records t<len>:<bytes>) is read
//   sio   Socket.IO's long-polling transport (Engine.IO 4, socket.io 4): GET
//         <path>?EIO=4&transport=polling opens it ("0{"sid":...}"), POST "40" joins the default
//         namespace, then GET ...&sid=SID in a loop; packets separated by \x1e; PING "2"
//         answered by a POST "3"
//
// Up, each session has a second connection for its POSTs (one at a time, "Connection: close"
// so that an idle session holds one connection, as a browser's does between sends): the JSON
// protocol's subscribe for wsbridge (POST /_wsbridge/send/<route>?s=TOKEN, body "<seq>\n" and
// t<len>:<bytes> records), "40" and then the event 421["subscribe",TOPIC] for Socket.IO, whose
// ack (431[...]) marks the session ready as wsbridge's {"type":"ack"} does. Messages reach
// Child::on_text as the same {"type":"message",...,"payload":...,"qos":...} text on every
// transport (Socket.IO's 42["message",{...}] unwrapped), so the counts, the latencies and the
// payload checks are the fan-out's own.
//
// The down connection keeps HTTP/1.1 keep-alive when the server allows it (wsbridge's poll
// answers, Node's), one request at a time. Each recv() takes one timestamp, as for WebSockets.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "child.hpp"
#include "child_http_state.hpp"

namespace bench {

std::string Child::http_path(const char* kind) const {
  return "/_wsbridge/" + std::string(kind) + o_.url.path;
}

bool Child::http_open(Conn& c) {
  c.role = Role::kHttpDown;
  c.state = State::kConnecting;
  c.token.clear();
  c.last_id = 0;
  c.mq_state = kOpening;
  c.keep_alive = false;
  Conn& up = ups_[c.index];
  up.role = Role::kHttpUp;
  up.post.clear();
  up.post_count = 0;
  up.sent_count = 0;
  up.next_seq = 1;
  std::string target;
  if (o_.transport == "sse") {
    target = http_path("sse");
  } else if (o_.transport == "poll") {
    target = http_path("poll");
  } else {
    target = o_.url.path + "?EIO=4&transport=polling";
  }
  return http_request(c, "GET " + target + " HTTP/1.1\r\nHost: " + o_.url.host_port() +
                             (o_.transport == "sse" ? "\r\nAccept: text/event-stream" : "") +
                             "\r\n\r\n");
}

bool Child::http_request(Conn& c, std::string request) {
  if (c.role == Role::kHttpDown) ++http_requests_;
  c.in.clear();
  c.http = kHead;
  c.busy = true;
  c.body_left = -1;
  c.chunked = false;
  c.dechunked.clear();
  c.status = 0;
  c.out = std::move(request);
  c.out_off = 0;
  if (c.fd >= 0 && c.keep_alive) return http_flush(c);
  if (c.fd >= 0) {
    ::close(c.fd);
    c.fd = -1;
  }
  return http_connect(c);  // the request goes out when the connection is writable
}

bool Child::http_connect(Conn& c) {
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
  c.keep_alive = false;
  loop_.watch(c, EPOLLIN | EPOLLOUT);
  return true;
}

bool Child::http_flush(Conn& c) {
  while (c.out_off < c.out.size()) {
    const ssize_t n =
        ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!c.epollout) loop_.set_events(c, EPOLLIN | EPOLLOUT);
      return true;
    }
    return false;
  }
  c.out.clear();
  c.out_off = 0;
  if (c.epollout) loop_.set_events(c, EPOLLIN);
  return true;
}

void Child::http_event(Conn& c, std::uint32_t events) {
  Conn& down = c.role == Role::kHttpUp ? conns_[c.index] : c;
  if ((events & EPOLLOUT) && !http_flush(c)) {
    if (!loop_.shutting_down) ++(c.status == 0 ? loop_.errors.connect : loop_.errors.closed);
    http_fail(down);
    return;
  }
  if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
  const ssize_t n = ::recv(c.fd, tcp_buf_.data(), tcp_buf_.size(), 0);
  if (n > 0) {
    c.in.append(tcp_buf_.data(), static_cast<std::size_t>(n));
    http_parse(c, now_ns());
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n < 0) {
    // Refused or reset.
    if (!loop_.shutting_down) {
      ++(c.status == 0 && c.in.empty() ? loop_.errors.connect : loop_.errors.closed);
    }
    http_fail(down);
    return;
  }
  http_eof(c, now_ns());
}

void Child::http_response(Conn& c, std::string_view body, std::uint64_t t) {
  if (c.role == Role::kHttpUp) {
    if (o_.transport != "sio") c.next_seq += c.sent_count;
    c.sent_count = 0;
    http_close(c);  // "Connection: close"
    if (!c.post.empty()) http_send_post(c);
    return;
  }
  if (o_.transport == "poll") {
    fallback_records(c, body, t);
  } else if (o_.transport == "sio") {
    sio_packets(c, body, t);
  } else {
    ++loop_.errors.protocol;  // an SSE stream with a length
    http_fail(c);
  }
  if (c.tag != kFailed) http_next(c);
}

void Child::http_next(Conn& c) {
  std::string target;
  if (o_.transport == "sio") {
    target = o_.url.path + "?EIO=4&transport=polling&sid=" + c.token;
  } else {
    target = http_path(o_.transport == "sse" ? "sse" : "poll") + "?s=" + c.token +
             "&last=" + std::to_string(c.last_id);
  }
  if (!http_request(c, "GET " + target + " HTTP/1.1\r\nHost: " + o_.url.host_port() + "\r\n\r\n")) {
    http_fail(c);
  }
}

void Child::http_post(Conn& c, std::string_view record, char kind) {
  Conn& up = ups_[c.index];
  if (o_.transport == "sio") {
    if (!up.post.empty()) up.post += '\x1e';
    up.post += record;
  } else {
    up.post += kind;
    up.post += std::to_string(record.size());
    up.post += ':';
    up.post += record;
  }
  ++up.post_count;
  if (!up.busy) http_send_post(up);
}

void Child::http_send_post(Conn& up) {
  Conn& down = conns_[up.index];
  std::string target = o_.transport == "sio"
                           ? o_.url.path + "?EIO=4&transport=polling&sid=" + down.token
                           : http_path("send") + "?s=" + down.token;
  std::string body =
      o_.transport == "sio" ? std::move(up.post) : std::to_string(up.next_seq) + "\n" + up.post;
  up.sent_count = up.post_count;
  up.post.clear();
  up.post_count = 0;
  ++http_posts_;
  if (!http_request(up, "POST " + target + " HTTP/1.1\r\nHost: " + o_.url.host_port() +
                            "\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body)) {
    http_fail(down);
  }
}

void Child::http_end_sessions() {
  for (auto& c : conns_) {
    if (c.tag == kFailed || c.token.empty()) continue;
    http_close(c);  // the stream or the poll waiting
    if (o_.transport == "sio") {
      http_post(c, "41");  // DISCONNECT from the namespace, then CLOSE the Engine.IO session
      http_post(c, "1");
    } else {
      http_post(c, R"({"type":"close","code":1000})", 'c');
    }
  }
  const std::uint64_t deadline = now_ns() + 3 * kSec;
  while (now_ns() < deadline) {
    bool busy = false;
    for (const auto& up : ups_) busy = busy || up.busy;
    if (!busy) break;
    loop_.poll(10);
  }
}

void Child::http_close(Conn& c) {
  if (c.fd >= 0) ::close(c.fd);  // leaves the epoll set with it
  c.fd = -1;
  c.busy = false;
  c.http = kNoRequest;
  c.keep_alive = false;
  c.epollout = false;
  c.out.clear();
  c.out_off = 0;
}

void Child::http_fail(Conn& c) {
  if (c.tag == kFailed) return;
  http_close(c);
  http_close(ups_[c.index]);
  c.state = State::kClosed;
  on_closed(c, false);  // the ramp's and the ready counts, as for a WebSocket
}

}  // namespace bench
