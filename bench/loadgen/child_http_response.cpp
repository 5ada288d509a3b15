// Reading an HTTP response on a fallback phase connection (child_http.cpp sends the requests):
// the status line and the headers that matter here, a body by Content-Length, chunks, or the
// connection's end, and an SSE stream read event by event as it arrives.
#include <cstdlib>
#include <string>
#include <string_view>

#include "child.hpp"
#include "child_http_state.hpp"

namespace bench {

namespace {

// Conn::chunk_left's states between a chunk's bytes: its size line, its CRLF, the body's end.
constexpr std::int64_t kChunkSize = -1;
constexpr std::int64_t kChunkEnd = -2;
constexpr std::int64_t kLastChunkEnd = -3;

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

}  // namespace bench
