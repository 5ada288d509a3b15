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

namespace bench {

namespace {

// Conn::http: where the response on a connection stands.
enum : std::uint8_t { kNoRequest = 0, kHead = 1, kBody = 2 };
// Conn::chunk_left's states between a chunk's bytes: its size line, its CRLF, the body's end.
constexpr std::int64_t kChunkSize = -1;
constexpr std::int64_t kChunkEnd = -2;
constexpr std::int64_t kLastChunkEnd = -3;
// Conn::mq_state of a down connection (the session).
enum : std::uint8_t { kOpening = 0, kSessionOpen = 1 };

// "key":"value" of a flat JSON object (trusted servers; no escapes in the values read here).
std::string_view json_string(std::string_view json, std::string_view key) {
  std::string k;
  k.reserve(key.size() + 4);
  k += '"';
  k += key;
  k += "\":\"";
  const std::size_t at = json.find(k);
  if (at == npos) return {};
  const std::size_t from = at + k.size();
  const std::size_t end = json.find('"', from);
  return end == npos ? std::string_view{} : json.substr(from, end - from);
}

bool header_is(std::string_view line, std::string_view name) {
  if (line.size() <= name.size() || line[name.size()] != ':') return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char ch = line[i];
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    if (ch != name[i]) return false;
  }
  return true;
}

std::string_view header_value(std::string_view line) {
  std::size_t i = line.find(':') + 1;
  while (i < line.size() && line[i] == ' ') ++i;
  return line.substr(i);
}

bool contains_nocase(std::string_view text, std::string_view lower) {
  for (std::size_t i = 0; i + lower.size() <= text.size(); ++i) {
    std::size_t j = 0;
    for (; j < lower.size(); ++j) {
      char ch = text[i + j];
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
      if (ch != lower[j]) break;
    }
    if (j == lower.size()) return true;
  }
  return false;
}

}  // namespace

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

bool Child::http_parse(Conn& c, std::uint64_t t) {
  Conn& down = c.role == Role::kHttpUp ? conns_[c.index] : c;
  if (c.http == kHead) {
    const std::size_t end = c.in.find("\r\n\r\n");
    if (end == npos) {
      if (c.in.size() > 65536) {
        ++loop_.errors.protocol;
        http_fail(down);
        return false;
      }
      return true;
    }
    const std::string_view head(c.in.data(), end);
    if (head.size() < 12 || !head.starts_with("HTTP/1.")) {
      ++loop_.errors.protocol;
      http_fail(down);
      return false;
    }
    c.status = std::atoi(std::string(head.substr(9, 3)).c_str());
    c.keep_alive = head[7] == '1';
    c.body_left = -1;
    std::size_t pos = head.find("\r\n") + 2;
    bool chunked = false;
    while (pos < head.size()) {
      std::size_t eol = head.find("\r\n", pos);
      if (eol == npos) eol = head.size();
      const std::string_view line = head.substr(pos, eol - pos);
      pos = eol + 2;
      if (header_is(line, "content-length")) {
        c.body_left = std::strtoll(std::string(header_value(line)).c_str(), nullptr, 10);
      } else if (header_is(line, "connection")) {
        const std::string_view v = header_value(line);
        if (contains_nocase(v, "close")) c.keep_alive = false;
        if (contains_nocase(v, "keep-alive")) c.keep_alive = true;
      } else if (header_is(line, "transfer-encoding")) {
        chunked = contains_nocase(header_value(line), "chunked");
      }
    }
    c.in.erase(0, end + 4);
    c.http = kBody;
    if (chunked && !(c.role == Role::kHttpDown && o_.transport == "sse")) {
      ++loop_.errors.protocol;  // only wsbridge's event streams come in chunks
      http_fail(down);
      return false;
    }
    c.chunked = chunked;
    c.chunk_left = kChunkSize;
    if (c.status != 200) {
      if (!loop_.shutting_down) {
        ++(down.mq_state == kOpening && c.role == Role::kHttpDown ? loop_.errors.handshake
                                                                  : loop_.errors.protocol);
        if (o_.procs == 1 && loop_.errors.protocol + loop_.errors.handshake <= 3) {
          std::fprintf(stderr, "wsbridge-loadgen: HTTP %d on a %s request\n", c.status,
                       c.role == Role::kHttpUp ? "POST" : "GET");
        }
      }
      http_fail(down);
      return false;
    }
  }
  if (c.http != kBody) {
    if (!c.in.empty()) {
      ++loop_.errors.protocol;  // bytes with no request in flight
      http_fail(down);
      return false;
    }
    return true;
  }
  if (c.role == Role::kHttpDown && o_.transport == "sse") {
    if (!c.chunked) return sse_events(c, c.in, t);
    bool ended = false;
    if (!dechunk(c, ended)) {
      ++loop_.errors.protocol;
      http_fail(c);
      return false;
    }
    if (!sse_events(c, c.dechunked, t)) return false;
    if (ended) {
      // The server ended the stream (sse_byte_limit) and kept the connection: the next one
      // goes on it, from the last id, as EventSource does.
      ++http_reconnects_;
      c.http = kNoRequest;
      c.busy = false;
      if (!c.keep_alive) http_close(c);
      http_next(c);
    }
    return true;
  }
  if (c.body_left < 0 || c.in.size() < static_cast<std::size_t>(c.body_left)) return true;
  const std::string body = c.in.substr(0, static_cast<std::size_t>(c.body_left));
  c.in.erase(0, static_cast<std::size_t>(c.body_left));
  c.http = kNoRequest;
  c.busy = false;
  if (!c.keep_alive) http_close(c);
  http_response(c, body, t);
  return true;
}

void Child::http_eof(Conn& c, std::uint64_t t) {
  Conn& down = c.role == Role::kHttpUp ? conns_[c.index] : c;
  const std::uint8_t was = c.http;
  ::close(c.fd);
  c.fd = -1;
  c.epollout = false;
  if (loop_.shutting_down || down.tag == kFailed) return;
  if (c.role == Role::kHttpDown && o_.transport == "sse" && was == kBody) {
    // The server ended the stream (sse_byte_limit, after {"type":"reconnect"}): carry on from
    // the last id, as EventSource does.
    if (c.mq_state == kSessionOpen) {
      ++http_reconnects_;
      c.http = kNoRequest;
      c.busy = false;
      http_next(c);
    } else {
      ++loop_.errors.closed;
      http_fail(c);
    }
    return;
  }
  if (was == kBody && c.body_left < 0) {  // a body that ends with the connection
    const std::string body = std::move(c.in);
    c.in.clear();
    c.http = kNoRequest;
    c.busy = false;
    http_response(c, body, t);
    return;
  }
  if (was == kNoRequest) return;  // a keep-alive connection closed between requests
  ++loop_.errors.closed;          // a request in flight lost its connection
  http_fail(down);
}

bool Child::dechunk(Conn& c, bool& ended) {
  std::size_t pos = 0;
  while (pos < c.in.size()) {
    if (c.chunk_left > 0) {
      const std::size_t n =
          std::min<std::size_t>(static_cast<std::size_t>(c.chunk_left), c.in.size() - pos);
      c.dechunked.append(c.in, pos, n);
      pos += n;
      c.chunk_left -= static_cast<std::int64_t>(n);
      if (c.chunk_left == 0) c.chunk_left = kChunkEnd;
      continue;
    }
    const std::size_t eol = c.in.find("\r\n", pos);
    if (eol == npos) break;
    const std::string_view line(c.in.data() + pos, eol - pos);
    pos = eol + 2;
    if (c.chunk_left == kChunkEnd || c.chunk_left == kLastChunkEnd) {
      if (!line.empty()) return false;  // no trailers in these streams
      if (c.chunk_left == kLastChunkEnd) {
        ended = true;
        break;
      }
      c.chunk_left = kChunkSize;
      continue;
    }
    char* end = nullptr;
    const std::string size_line(line);
    const long long size = std::strtoll(size_line.c_str(), &end, 16);
    if (size_line.empty() || end != size_line.c_str() + size_line.size() || size < 0) return false;
    c.chunk_left = size == 0 ? kLastChunkEnd : size;
  }
  c.in.erase(0, pos);
  return !(ended && !c.in.empty());  // nothing may follow the stream's end before our request
}

bool Child::sse_events(Conn& c, std::string& events, std::uint64_t t) {
  std::size_t pos = 0;
  bool alive = true;
  while (alive) {
    const std::size_t end = events.find("\n\n", pos);
    if (end == npos) break;
    const std::string_view ev(events.data() + pos, end - pos);
    pos = end + 2;
    std::string_view data, event;
    bool has_data = false;
    std::int64_t id = -1;
    std::size_t lp = 0;
    while (lp < ev.size()) {
      std::size_t nl = ev.find('\n', lp);
      if (nl == npos) nl = ev.size();
      const std::string_view line = ev.substr(lp, nl - lp);
      lp = nl + 1;
      if (line.empty() || line[0] == ':') continue;  // ": hb" heartbeats
      const std::size_t colon = line.find(':');
      const std::string_view field = line.substr(0, colon);
      std::string_view value = colon == npos ? std::string_view{} : line.substr(colon + 1);
      if (value.starts_with(' ')) value.remove_prefix(1);
      if (field == "data") {
        if (has_data) ++loop_.errors.protocol;  // multi-line data: no message of this load has any
        data = value;
        has_data = true;
      } else if (field == "id") {
        id = std::strtoll(std::string(value).c_str(), nullptr, 10);
      } else if (field == "event") {
        event = value;
      }
    }
    if (!has_data) continue;
    if (event == "control") {
      fallback_control(c, data);
    } else if (event.empty()) {
      if (id >= 0) c.last_id = static_cast<std::uint64_t>(id);
      ++loop_.messages_in;
      on_text(c, data.data(), data.size(), t);
    } else {
      ++loop_.errors.protocol;  // "frame": base64 messages, which this load never sends
    }
    alive = c.tag != kFailed;
  }
  if (!alive) return false;
  events.erase(0, pos);
  return true;
}

void Child::fallback_control(Conn& c, std::string_view json) {
  const std::string_view type = json_string(json, "type");
  if (type == "welcome") {
    if (!c.token.empty()) return;  // a stream carried again: the same session
    c.token = std::string(json_string(json, "session"));
    if (c.token.empty()) {
      ++loop_.errors.protocol;
      http_fail(c);
      return;
    }
    c.state = State::kOpen;
    c.mq_state = kSessionOpen;
    const std::string topic =
        o_.topics > 1 ? o_.topic + "/" + std::to_string(global_index(c) % o_.topics) : o_.topic;
    http_post(c, R"({"type":"subscribe","topic":")" + topic + R"(","id":1})");
  } else if (type == "lost") {
    ++http_lost_;
  } else if (type == "close") {
    if (!loop_.shutting_down) {
      std::int64_t code = 0;
      find_int(json, R"("code":)", code);
      ++loop_.errors.closed;
      ++loop_.errors.close_codes[static_cast<int>(code)];
    }
    http_fail(c);
  }
  // "reconnect": the stream ends here; http_eof opens it again
}

void Child::fallback_records(Conn& c, std::string_view body, std::uint64_t t) {
  const std::size_t nl = body.find('\n');
  if (nl == npos) {
    ++loop_.errors.protocol;
    http_fail(c);
    return;
  }
  const std::uint64_t first = std::strtoull(std::string(body.substr(0, nl)).c_str(), nullptr, 10);
  std::uint64_t k = 0;
  std::size_t pos = nl + 1;
  while (pos < body.size()) {
    const char kind = body[pos];
    const std::size_t colon = body.find(':', pos);
    if (colon == npos) {
      ++loop_.errors.protocol;
      http_fail(c);
      return;
    }
    const auto len = static_cast<std::size_t>(
        std::strtoull(std::string(body.substr(pos + 1, colon - pos - 1)).c_str(), nullptr, 10));
    if (colon + 1 + len > body.size()) {
      ++loop_.errors.protocol;
      http_fail(c);
      return;
    }
    const std::string_view payload = body.substr(colon + 1, len);
    pos = colon + 1 + len;
    if (kind == 'c') {
      fallback_control(c, payload);
    } else if (kind == 't') {
      c.last_id = first + k++;
      ++loop_.messages_in;
      on_text(c, payload.data(), payload.size(), t);
    } else {
      c.last_id = first + k++;
      ++loop_.errors.protocol;  // binary: never in this load
    }
    if (c.tag == kFailed) return;
  }
}

void Child::sio_packets(Conn& c, std::string_view body, std::uint64_t t) {
  static constexpr std::string_view kEvent = R"(42["message",)";
  std::size_t pos = 0;
  while (pos <= body.size() && c.tag != kFailed) {
    std::size_t end = body.find('\x1e', pos);
    if (end == npos) end = body.size();
    const std::string_view p = body.substr(pos, end - pos);
    pos = end + 1;
    if (p.empty()) continue;
    switch (p[0]) {
      case '0':  // OPEN {"sid":...}
        if (c.token.empty()) {
          c.token = std::string(json_string(p, "sid"));
          if (c.token.empty()) {
            ++loop_.errors.protocol;
            http_fail(c);
            return;
          }
          c.mq_state = kSessionOpen;
          http_post(c, "40");  // CONNECT to the default namespace
        }
        break;
      case '2':  // PING: the client answers PONG within pingTimeout
        http_post(c, "3");
        break;
      case '3':
      case '6':  // PONG, NOOP
        break;
      case '1':  // CLOSE
        if (!loop_.shutting_down) ++loop_.errors.closed;
        http_fail(c);
        return;
      case '4':  // MESSAGE: a Socket.IO packet
        if (p.size() < 2) {
          ++loop_.errors.protocol;
        } else if (p[1] == '2' && p.starts_with(kEvent) && p.back() == ']') {
          const std::string_view inner = p.substr(kEvent.size(), p.size() - kEvent.size() - 1);
          ++loop_.messages_in;
          on_text(c, inner.data(), inner.size(), t);
        } else if (p[1] == '0') {  // CONNECT answered: the namespace is joined
          c.state = State::kOpen;
          const std::string topic =
              o_.topics > 1 ? o_.topic + "/" + std::to_string(global_index(c) % o_.topics)
                            : o_.topic;
          http_post(c, R"(421["subscribe",")" + topic + R"("])");
        } else if (p[1] == '3') {  // ACK of the subscribe
          if (!c.ready) mark_ready(c);
        } else if (p[1] == '1' || p[1] == '4') {  // DISCONNECT, CONNECT_ERROR
          if (!loop_.shutting_down) ++loop_.errors.closed;
          http_fail(c);
          return;
        } else {
          ++foreign_messages_;
        }
        break;
      default:
        ++loop_.errors.protocol;
    }
  }
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
