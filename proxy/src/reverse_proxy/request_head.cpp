// A browser's request head, read strictly (request_head.hpp). The field-line rules here are also
// the response parser's and the chunked trailers' (namespace detail below): one reading of a
// field line for every head the proxy relays, so that no two of its parsers disagree.
#include "reverse_proxy/request_head.hpp"

#include <charconv>
#include <vector>

#include "handshake/request_line.hpp"
#include "http/http1.hpp"
#include "reverse_proxy/head_fields.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge::reverse_proxy {

// Shared with response_head.cpp and body_follower.cpp, which declare what they use (there is no
// private header for three functions; keep the declarations there in step with these).
namespace detail {

bool parse_field_line(std::string_view line, HttpHeader& field, std::string& why) {
  if (line.find_first_of("\r\n") != std::string_view::npos) {
    why = "a bare CR or LF in a field line";
    return false;
  }
  if (line.front() == ' ' || line.front() == '\t') {
    // obs-fold: RFC 9112 5.2 lets a proxy refuse it; joining lines is a reading others may not
    // share.
    why = "obsolete line folding";
    return false;
  }
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) {
    why = "a field line without a colon";
    return false;
  }
  const std::string_view name = line.substr(0, colon);
  if (!is_http_token(name)) {
    // "Transfer-Encoding : chunked" is the classic: some servers read it, some do not.
    why = !name.empty() && (name.back() == ' ' || name.back() == '\t')
              ? "whitespace before a field's colon"
              : "a field name that is not a token";
    return false;
  }
  const std::string_view value = text::trim(line.substr(colon + 1));
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      why = "a control character in a field value";
      return false;
    }
  }
  field.name = std::string(name);
  field.value = std::string(value);
  return true;
}

// `rest` is what follows the start line's CRLF: field lines, each ending CRLF, then the empty line
// that ends the head (and nothing after it).
bool parse_fields(std::string_view rest, HttpHeaders& fields, std::string& why) {
  while (true) {
    const auto eol = rest.find("\r\n");
    if (eol == std::string_view::npos) {
      why = rest.find('\n') != std::string_view::npos ? "a bare LF ending a line"
                                                      : "the head does not end with an empty line";
      return false;
    }
    const std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol + 2);
    if (line.empty()) {
      if (!rest.empty()) {
        why = "bytes after the head's empty line";
        return false;
      }
      return true;
    }
    HttpHeader field;
    if (!parse_field_line(line, field, why)) return false;
    fields.push_back(std::move(field));
  }
}

bool list_has(const HttpHeaders& fields, std::string_view name, std::string_view token) {
  for (const std::string_view element : http1::list_elements(fields, name)) {
    if (text::iequals(element, token)) return true;
  }
  return false;
}

// Content-Length: absent (false, no `why`), or one decimal number however often it is repeated
// ("5", "5, 5", two fields of "5"); anything else is refused with `why`.
bool content_length(const HttpHeaders& fields, bool& present, std::uint64_t& length,
                    std::string& why) {
  present = false;
  for (const auto& f : fields) {
    if (!text::iequals(f.name, "content-length")) continue;
    std::string_view list = f.value;
    while (true) {
      const auto comma = list.find(',');
      const std::string_view element = text::trim(list.substr(0, comma));
      std::uint64_t value = 0;
      // Digits only: from_chars alone would take "-0" for a signed type and stop at "5x".
      const bool digits =
          !element.empty() && element.find_first_not_of("0123456789") == std::string_view::npos;
      const auto [end, ec] =
          std::from_chars(element.data(), element.data() + element.size(), value);
      if (!digits || ec != std::errc() || end != element.data() + element.size()) {
        why = ec == std::errc::result_out_of_range ? "a Content-Length too large"
                                                   : "a Content-Length that is not a number";
        return false;
      }
      if (present && value != length) {
        why = "Content-Length values that differ";
        return false;
      }
      present = true;
      length = value;
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return true;
}

}  // namespace detail

namespace {

// A Host value as clients send one: a DNS name (labels of letters, digits, '_' and inner '-')
// or an IPv4 address, or an IPv6 literal in brackets, then maybe ":port"; or empty. RFC 3986 also
// lets a name hold sub-delimiters and %XX
// ("a,b", "a;b=c", "a%2Cb"), which no DNS name has, and what the proxy forwards as
// X-Forwarded-Host and Forwarded's host= must be a host: "a,b" reads as a list there, whose
// first element a backend may take for the host it builds links with.
bool valid_host(std::string_view host) {
  constexpr auto npos = std::string_view::npos;
  std::string_view port;
  if (host.starts_with('[')) {
    const auto close = host.find(']');
    if (close == npos) return false;
    const std::string_view literal = host.substr(1, close - 1);
    if (literal.empty() || literal.find_first_not_of("0123456789abcdefABCDEF:.") != npos) {
      return false;
    }
    const std::string_view rest = host.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    if (!rest.empty()) port = rest.substr(1);
  } else {
    const auto colon = host.find(':');
    std::string_view name = host.substr(0, colon);
    if (name.ends_with('.')) name.remove_suffix(1);  // (a fully qualified name's root)
    // (Empty: a request whose target has no authority.)
    if (!name.empty() && !text::is_dns_name(name, true)) return false;
    if (colon != npos) port = host.substr(colon + 1);
  }
  return port.size() <= 5 && port.find_first_not_of("0123456789") == npos;
}

HeadError refuse(unsigned status, std::string reason) {
  return HeadError{status, std::move(reason)};
}

}  // namespace

std::string_view RequestHead::path() const {
  return std::string_view(target).substr(0, target.find('?'));
}

std::size_t find_head_end(std::string_view buffer) {
  const auto blank = buffer.find("\r\n\r\n");
  return blank == std::string_view::npos ? std::string_view::npos : blank + 4;
}

bool has_bare_line_feed(std::string_view buffer) {
  for (std::size_t at = buffer.find('\n'); at != std::string_view::npos;
       at = buffer.find('\n', at + 1)) {
    if (at == 0 || buffer[at - 1] != '\r') return true;
  }
  return false;
}

std::variant<RequestHead, HeadError> parse_request_head(std::string_view head) {
  // The request line. Empty lines before it (which RFC 9112 2.2 lets a server skip) are refused:
  // find_head_end would take "\r\n\r\n" at the start of a buffer for a whole head, so skipping
  // them could not be done consistently, and no browser sends them.
  const auto eol = head.find("\r\n");
  if (eol == std::string_view::npos) return refuse(400, "no request line");
  const std::string_view line = head.substr(0, eol);
  if (line.empty()) return refuse(400, "an empty line before the request line");
  const auto parsed = parse_request_line(line, RequestLineRules{});
  if (const auto* error = std::get_if<RequestLineError>(&parsed)) {
    return refuse(error->status, std::string(error->reason));
  }
  const RequestLine& start = std::get<RequestLine>(parsed);
  RequestHead request;
  request.method = std::string(start.method);
  request.target = std::string(start.target);
  request.minor_version = start.minor_version;

  if (head.size() > kMaxHeadBytes) return refuse(431, "a request head over 16 KiB");
  std::string why;
  if (!detail::parse_fields(head.substr(eol + 2), request.headers, why)) return refuse(400, why);
  const HttpHeaders& fields = request.headers;

  // Framing (RFC 9112 6.1-6.3): exactly one reading, or none.
  bool has_length = false;
  if (!detail::content_length(fields, has_length, request.content_length, why)) {
    return refuse(400, why);
  }
  const int coding = http1::transfer_coding(fields);
  if (coding != 0) {
    if (request.minor_version == 0) return refuse(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (has_length) return refuse(400, "both Transfer-Encoding and Content-Length");
    if (coding == 2) return refuse(400, "an empty Transfer-Encoding");
    if (coding == 3) return refuse(501, "a transfer coding other than chunked");
    request.body = BodyFraming::kChunked;
  } else if (has_length) {
    // Content-Length: 0 stays kLength (with 0): the backend then gets "Content-Length: 0", which
    // some servers require on a POST.
    request.body = BodyFraming::kLength;
  }

  std::size_t hosts = 0;
  for (const auto& f : fields) {
    if (!text::iequals(f.name, "host")) continue;
    if (++hosts > 1) return refuse(400, "more than one Host");
    if (!valid_host(f.value)) return refuse(400, "a Host that is not a host");
  }
  if (hosts == 0 && request.minor_version == 1) {
    return refuse(400, "no Host in an HTTP/1.1 request");
  }

  const bool close = detail::list_has(fields, "connection", "close");
  request.keep_alive = request.minor_version == 1
                           ? !close
                           : !close && detail::list_has(fields, "connection", "keep-alive");
  // RFC 6455 4.1: GET, HTTP/1.1 at least, Upgrade naming websocket, Connection naming upgrade.
  request.websocket_upgrade = request.method == "GET" && request.minor_version == 1 &&
                              detail::list_has(fields, "upgrade", "websocket") &&
                              detail::list_has(fields, "connection", "upgrade");
  for (const auto& f : fields) {
    if (text::iequals(f.name, "expect") && text::iequals(f.value, "100-continue")) {
      request.expect_continue = true;
    }
  }
  return request;
}

}  // namespace wsbridge::reverse_proxy
