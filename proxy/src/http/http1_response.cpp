// The HTTP client's response parser (http1.hpp): a backend's HTTP/1.x response read as it comes,
// strict where two readers could take it differently, bounded everywhere.
#include <algorithm>
#include <charconv>
#include <optional>
#include <string_view>

#include "http/http1.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge::http1 {

namespace {
using text::iequals;
using text::list_contains;
using text::trim;

// A whole response head may not exceed this (servers rarely allow more than 8 KiB).
constexpr std::size_t kMaxHeadBytes = std::size_t{64} * 1024;
constexpr std::size_t kMaxChunkLineBytes = 1024;
}  // namespace

ResponseParser::State ResponseParser::fail(std::string message, bool too_large) {
  state_ = State::kError;
  error_ = std::move(message);
  too_large_ = too_large;
  keep_alive_ = false;
  return state_;
}

ResponseParser::State ResponseParser::body_done() {
  phase_ = Phase::kDone;
  state_ = State::kComplete;
  return state_;
}

ResponseParser::State ResponseParser::parse_head(std::string_view head) {
  // RFC 9110 5.5 and RFC 9112 2.2: a NUL, a CR that does not end a line, or a line ending in LF
  // alone, anywhere in the head (feed refuses the last as it comes; the same verdict here).
  for (std::size_t i = 0; i < head.size(); ++i) {
    const char c = head[i];
    if (c == '\0' || (c == '\r' && (i + 1 == head.size() || head[i + 1] != '\n')) ||
        (c == '\n' && (i == 0 || head[i - 1] != '\r'))) {
      return fail("a NUL, a bare CR or a line ending in LF alone in the response head");
    }
  }
  // Status line: HTTP/1.x SP 3DIGIT SP reason
  const auto eol = head.find("\r\n");
  std::string_view status_line = head.substr(0, eol);
  if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 || status_line[8] != ' ') {
    return fail("malformed status line");
  }
  const bool http10 = status_line[7] == '0';
  int status = 0;
  const auto [end, ec] = std::from_chars(status_line.data() + 9, status_line.data() + 12, status);
  if (ec != std::errc() || end != status_line.data() + 12 || status < 100 || status > 999 ||
      (status_line.size() > 12 && status_line[12] != ' ')) {
    return fail("malformed status code");
  }
  HttpHeaders headers;
  std::string_view rest = eol == std::string_view::npos ? "" : head.substr(eol + 2);
  while (!rest.empty()) {
    const auto line_end = rest.find("\r\n");
    std::string_view line = rest.substr(0, line_end);
    rest = line_end == std::string_view::npos ? "" : rest.substr(line_end + 2);
    if (line.empty()) continue;
    if (line.front() == ' ' || line.front() == '\t') return fail("obsolete header folding");
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || !is_http_token(line.substr(0, colon))) {
      return fail("malformed header line");
    }
    headers.push_back(
        {std::string(line.substr(0, colon)), std::string(trim(line.substr(colon + 1)))});
  }

  if (status < 200) {
    // 1xx: informational (100 Continue, 103 Early Hints); the real response follows.
    if (status == 101) return fail("unexpected 101 Switching Protocols");
    line_.clear();
    return state_;
  }
  response_.status = status;
  response_.headers = std::move(headers);
  const std::string* connection = find_header(response_.headers, "connection");
  keep_alive_ = http10 ? connection != nullptr && list_contains(*connection, "keep-alive")
                       : connection == nullptr || !list_contains(*connection, "close");

  // RFC 9112 6.3: several Content-Length values that differ (in one field or several) leave the
  // body's end unknown; with Transfer-Encoding too, the message is how smuggling starts.
  std::optional<std::uint64_t> content_length;
  for (const HttpHeader& h : response_.headers) {
    if (!iequals(h.name, "content-length")) continue;
    std::string_view list = h.value;
    while (true) {
      const auto comma = list.find(',');
      const std::string_view item = trim(list.substr(0, comma));
      std::uint64_t n = 0;
      const auto [p, e] = std::from_chars(item.data(), item.data() + item.size(), n);
      if (item.empty() || e != std::errc() || p != item.data() + item.size()) {
        return fail("malformed Content-Length");
      }
      if (content_length && *content_length != n) return fail("conflicting Content-Length values");
      content_length = n;
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  const std::string* te = find_header(response_.headers, "transfer-encoding");
  if (te != nullptr && content_length) return fail("both Transfer-Encoding and Content-Length");
  if (head_request_ || status == 204 || status == 304) return body_done();
  if (te != nullptr) {
    // Exactly "chunked", as the reverse proxy takes it: any other coding ("gzip, chunked",
    // "gzip" delimited by the close) would be handed on still encoded, as if it were the body.
    if (http1::transfer_coding(response_.headers) != 1) {
      return fail("a transfer coding other than chunked");
    }
    phase_ = Phase::kChunkSize;
    return state_;
  }
  if (content_length) {
    const std::uint64_t length = *content_length;
    if (length > max_body_) {
      return fail("response of " + std::to_string(length) + " bytes is over the limit of " +
                      std::to_string(max_body_),
                  true);
    }
    response_.body.reserve(static_cast<std::size_t>(length));
    remaining_ = length;
    if (length == 0) return body_done();
    phase_ = Phase::kBody;
    return state_;
  }
  keep_alive_ = false;
  phase_ = Phase::kUntilClose;
  return state_;
}

ResponseParser::State ResponseParser::feed(const char* data, std::size_t len) {
  std::size_t i = 0;
  while (i < len && state_ == State::kIncomplete) {
    switch (phase_) {
      case Phase::kHead: {
        // Accumulate until the blank line; search only the new bytes (plus 3 before them).
        const std::size_t before = line_.size();
        const std::size_t take = std::min(len - i, kMaxHeadBytes + 4 - before);
        line_.append(data + i, take);
        const auto end = line_.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
        if (end == std::string::npos) {
          if (line_.size() > kMaxHeadBytes) return fail("response head over 64 KiB");
          // A head whose lines end in LF alone never ends here: said now, not at the timeout.
          for (auto lf = line_.find('\n', before); lf != std::string::npos;
               lf = line_.find('\n', lf + 1)) {
            if (lf == 0 || line_[lf - 1] != '\r') return fail("a line ending in LF alone");
          }
          i += take;
          break;
        }
        i += end + 4 - before;
        const std::string head = line_.substr(0, end);
        line_.clear();
        if (parse_head(head) == State::kError) return state_;
        break;
      }
      case Phase::kBody: {
        const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, len - i));
        response_.body.append(data + i, take);
        i += take;
        remaining_ -= take;
        if (remaining_ == 0) body_done();
        break;
      }
      case Phase::kUntilClose: {
        if (response_.body.size() + (len - i) > max_body_) {
          return fail("response over the limit of " + std::to_string(max_body_) + " bytes", true);
        }
        response_.body.append(data + i, len - i);
        i = len;
        break;
      }
      case Phase::kChunkSize:
      case Phase::kTrailers: {
        const char c = data[i++];
        line_ += c;
        if (line_.size() > kMaxChunkLineBytes) return fail("chunk header line too long");
        if (!line_.ends_with("\r\n")) break;
        std::string_view line(line_.data(), line_.size() - 2);
        if (phase_ == Phase::kTrailers) {
          if (line.empty()) {
            line_.clear();
            body_done();
          }
          line_.clear();
          break;
        }
        line = line.substr(0, line.find(';'));  // chunk extensions are ignored
        line = trim(line);
        std::uint64_t size = 0;
        const auto [p, e] = std::from_chars(line.data(), line.data() + line.size(), size, 16);
        if (line.empty() || e != std::errc() || p != line.data() + line.size()) {
          return fail("malformed chunk size");
        }
        line_.clear();
        if (size == 0) {
          phase_ = Phase::kTrailers;
        } else {
          if (response_.body.size() + size > max_body_) {
            return fail("response over the limit of " + std::to_string(max_body_) + " bytes", true);
          }
          remaining_ = size;
          phase_ = Phase::kChunkData;
        }
        break;
      }
      case Phase::kChunkData: {
        const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, len - i));
        response_.body.append(data + i, take);
        i += take;
        remaining_ -= take;
        if (remaining_ == 0) phase_ = Phase::kChunkDataEnd;
        break;
      }
      case Phase::kChunkDataEnd: {
        line_ += data[i++];
        if (line_.size() < 2) break;
        if (line_ != "\r\n") return fail("chunk data not followed by CRLF");
        line_.clear();
        phase_ = Phase::kChunkSize;
        break;
      }
      case Phase::kDone:
        break;
    }
  }
  // Bytes after a complete response (the client never pipelines): the response stands, but the
  // connection is not trusted with another request. The same whether they came in the same read
  // or a later one (the pool closes a connection that sends unasked bytes).
  if (state_ == State::kComplete && i < len) keep_alive_ = false;
  return state_;
}

ResponseParser::State ResponseParser::finish() {
  if (state_ != State::kIncomplete) return state_;
  if (phase_ == Phase::kUntilClose) {
    keep_alive_ = false;
    return body_done();
  }
  if (phase_ == Phase::kHead && line_.empty()) return fail("connection closed before a response");
  return fail("connection closed in the middle of the response");
}

}  // namespace wsbridge::http1
