#include "http/http1.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <string_view>

#include "wsbridge/text.hpp"

namespace wsbridge {

namespace {
using text::iequals;
using text::list_contains;
using text::trim;

// A whole request or response head may not exceed this (servers rarely allow more than 8 KiB).
constexpr std::size_t kMaxHeadBytes = 64 * 1024;
constexpr std::size_t kMaxChunkLineBytes = 1024;
}  // namespace

bool safe_header_value(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

bool is_http_token(std::string_view text) {
  if (text.empty()) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

const std::string* find_header(const HttpHeaders& headers, std::string_view name) {
  for (const auto& h : headers) {
    if (iequals(h.name, name)) return &h.value;
  }
  return nullptr;
}

const std::string* find_last_header(const HttpHeaders& headers, std::string_view name) {
  const std::string* last = nullptr;
  for (const auto& h : headers) {
    if (iequals(h.name, name)) last = &h.value;
  }
  return last;
}

std::string joined_header(const HttpHeaders& headers, std::string_view name) {
  std::string out;
  for (const auto& h : headers) {
    if (!iequals(h.name, name) || h.value.empty()) continue;
    if (!out.empty()) out += ", ";
    out += h.value;
  }
  return out;
}

std::string_view to_string(HttpFailure failure) {
  switch (failure) {
    case HttpFailure::kNone:
      return "none";
    case HttpFailure::kTimeout:
      return "timeout";
    case HttpFailure::kUnavailable:
      return "upstream_unavailable";
    case HttpFailure::kTooLarge:
      return "response_too_large";
    case HttpFailure::kBadResponse:
      return "bad_response";
    case HttpFailure::kOverloaded:
      return "overloaded";
    case HttpFailure::kShutdown:
      return "shutting_down";
  }
  return "unknown";
}

namespace http1 {

std::string Url::host_header() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  std::string h = ipv6 ? "[" + host + "]" : host;
  if (port != (tls ? 443 : 80)) h += ":" + std::to_string(port);
  return h;
}

std::optional<Url> parse_url(std::string_view text, std::string& error) {
  Url url;
  if (text.starts_with("http://")) {
    text.remove_prefix(7);
  } else if (text.starts_with("https://")) {
    url.tls = true;
    text.remove_prefix(8);
  } else {
    error = "the URL must start with http:// or https://";
    return std::nullopt;
  }
  const auto path_start = text.find('/');
  std::string_view authority = text.substr(0, path_start);
  std::string_view path = path_start == std::string_view::npos ? "" : text.substr(path_start);
  if (path.find_first_of("?#") != std::string_view::npos) {
    error = "the URL must not have a query or fragment";
    return std::nullopt;
  }
  if (authority.find('@') != std::string_view::npos) {
    error = "the URL must not carry user information (use headers for credentials)";
    return std::nullopt;
  }
  std::string_view port_text;
  if (authority.starts_with("[")) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "unterminated IPv6 address in the URL";
      return std::nullopt;
    }
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        error = "unexpected text after the IPv6 address";
        return std::nullopt;
      }
      port_text = rest.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (url.host.empty() || url.host.find_first_of(" \t\r\n/\\") != std::string::npos) {
    error = "the URL has no valid host";
    return std::nullopt;
  }
  url.port = url.tls ? 443 : 80;
  if (!port_text.empty()) {
    unsigned port = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
      error = "the URL's port must be a number from 1 to 65535";
      return std::nullopt;
    }
    url.port = static_cast<std::uint16_t>(port);
  }
  if (!safe_header_value(path) || path.find(' ') != std::string_view::npos) {
    error = "the URL's path must not contain spaces or control characters";
    return std::nullopt;
  }
  url.path = std::string(path);
  return url;
}

std::string serialize_request(const HttpRequest& request, const Url& url) {
  std::string out;
  out.reserve(256 + request.body.size());
  out += request.method;
  out += ' ';
  // The backend URL's path, then the target ("" targets the URL itself), without a double '/'.
  std::string_view base = url.path;
  if (request.target.empty()) {
    out += base.empty() ? "/" : base;
  } else {
    if (base.ends_with("/") && request.target.starts_with("/")) base.remove_suffix(1);
    out += base;
    out += request.target;
  }
  out += " HTTP/1.1\r\nHost: ";
  out += url.host_header();
  out += "\r\n";
  for (const auto& h : request.headers) {
    if (iequals(h.name, "host") || iequals(h.name, "content-length") ||
        iequals(h.name, "connection") || iequals(h.name, "transfer-encoding")) {
      continue;
    }
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
  const bool body_expected = !request.body.empty() || request.method == "POST" ||
                             request.method == "PUT" || request.method == "PATCH";
  if (body_expected) {
    out += "Content-Length: ";
    out += std::to_string(request.body.size());
    out += "\r\n";
  }
  out += "Connection: keep-alive\r\n\r\n";
  out += request.body;
  return out;
}

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
    // (RFC 9110 5.5: a NUL or a CR in a value is an error; a bare LF is no line end here.)
    if (line.find_first_of(std::string_view("\0\r\n", 3)) != std::string_view::npos) {
      return fail("a header line with a NUL, a bare CR or a bare LF");
    }
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
    if (!list_contains(*te, "chunked")) {
      // Some other coding, delimited by the close.
      keep_alive_ = false;
      phase_ = Phase::kUntilClose;
      return state_;
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

}  // namespace http1
}  // namespace wsbridge
