#include "handshake/request_line.hpp"

#include <array>
#include <string>

#include "wsbridge/http_client.hpp"

namespace wsbridge {

namespace {

// What libwebsockets 4.1.6 parses (its method_names, with LWS_WITH_HTTP_UNCOMMON_HEADERS as
// Debian builds it), CONNECT excepted.
constexpr std::array<std::string_view, 7> kServedMethods = {"GET",   "HEAD",   "POST",   "PUT",
                                                            "PATCH", "DELETE", "OPTIONS"};

bool hex_digit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

RequestLineError refuse(unsigned status, std::string_view reason) {
  return RequestLineError{status, reason};
}

// The target's bytes: RFC 3986 leaves no room for whitespace, controls or a fragment in a request,
// and a '%' must start a pair of hex digits. "%00" decodes to a NUL, which ends a C string early
// wherever the path goes next (lws itself drops the connection on it); "%0D" and "%0A" end lws'
// request line.
std::string_view target_problem(std::string_view target) {
  for (std::size_t i = 0; i < target.size(); ++i) {
    const char c = target[i];
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '#') {
      return "whitespace, a control character or '#' in the request target";
    }
    if (c != '%') continue;
    if (i + 2 >= target.size() || !hex_digit(target[i + 1]) || !hex_digit(target[i + 2])) {
      return "a '%' in the request target that does not start two hex digits";
    }
    if (target[i + 1] == '0') {
      const char low = static_cast<char>(target[i + 2] | 0x20);
      if (low == '0') return "an encoded NUL (%00) in the request target";
      // lws 4.1.6 decodes the target before it looks for the line's end: "%0A" ends its request
      // line there, and the rest of the target is read as a header line (a header the client
      // did not send, for lws only).
      if (low == 'a' || low == 'd') return "an encoded CR or LF (%0D, %0A) in the request target";
    }
    i += 2;
  }
  return {};
}

}  // namespace

std::variant<RequestLine, RequestLineError> parse_request_line(std::string_view line,
                                                               const RequestLineRules& rules) {
  const auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return refuse(400, "a malformed request line");
  const auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    return refuse(400, "a request line without an HTTP version (HTTP/0.9 is not served)");
  }
  RequestLine request;
  request.method = line.substr(0, sp1);
  request.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_http_token(request.method)) return refuse(400, "a method that is not a token");
  // CONNECT would make the connection a tunnel to wherever the client names.
  if (request.method == "CONNECT")
    return refuse(501, "CONNECT is not served: this is no forward proxy");
  if (rules.known_methods_only) {
    bool served = false;
    for (const std::string_view m : kServedMethods) served = served || m == request.method;
    if (!served) return refuse(501, "a method that is not served here");
  }
  if (request.target.size() > rules.max_target_bytes)
    return refuse(414, "a request target too long");
  if (request.target.empty() || request.target.front() != '/') {
    return refuse(400, "a request target that is not a path (origin-form)");
  }
  if (const std::string_view why = target_problem(request.target); !why.empty()) {
    return refuse(400, why);
  }
  if (version.size() != 8 || !version.starts_with("HTTP/") || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return refuse(400, "a malformed HTTP version");
  }
  if (version[5] != '1' || version[7] > '1') return refuse(505, "only HTTP/1.0 and 1.1 are served");
  request.minor_version = static_cast<unsigned>(version[7] - '0');
  return request;
}

std::string closing_text_reply(unsigned status, std::string_view phrase, std::string_view line,
                               std::string_view extra_headers) {
  std::string reply = "HTTP/1.1 " + std::to_string(status) + " ";
  reply += phrase;
  reply += "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(line.size() + 1) +
           "\r\nConnection: close\r\n";
  reply += extra_headers;
  reply += "\r\n";
  reply += line;
  reply += '\n';
  return reply;
}

std::string_view request_refusal_phrase(unsigned status) {
  switch (status) {
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Bad Request";
  }
}

}  // namespace wsbridge
