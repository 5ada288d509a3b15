#include "http/http1.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <string_view>

#include "wsbridge/text.hpp"

namespace wsbridge {

namespace {
using text::iequals;
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

std::vector<std::string_view> list_elements(const HttpHeaders& fields, std::string_view name) {
  std::vector<std::string_view> out;
  for (const auto& f : fields) {
    if (!iequals(f.name, name)) continue;
    std::string_view list = f.value;
    while (true) {
      const auto comma = list.find(',');
      const std::string_view element = text::trim(list.substr(0, comma));
      if (!element.empty()) out.push_back(element);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return out;
}

int transfer_coding(const HttpHeaders& fields) {
  if (find_header(fields, "transfer-encoding") == nullptr) return 0;
  const auto codings = list_elements(fields, "transfer-encoding");
  if (codings.empty()) return 2;
  return codings.size() == 1 && iequals(codings.front(), "chunked") ? 1 : 3;
}

bool is_idempotent_method(std::string_view method) {
  for (const std::string_view m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) {
    if (method == m) return true;
  }
  return false;
}

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

}  // namespace http1
}  // namespace wsbridge
