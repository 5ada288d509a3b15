// A backend's response head and where its body ends (response_head.hpp).
#include "reverse_proxy/response_head.hpp"

#include <vector>

#include "http/http1.hpp"
#include "reverse_proxy/head_fields.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge::reverse_proxy {

namespace {

std::optional<ResponseHead> refuse(std::string& error, std::string why) {
  error = std::move(why);
  return std::nullopt;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

std::optional<ResponseHead> parse_response_head(std::string_view head, std::string_view method,
                                                std::string& error) {
  // HTTP/1.x SP 3DIGIT [SP reason]: "HTTP/1.1 200\r\n" (no space) is taken as an empty reason,
  // as browsers take it.
  const auto eol = head.find("\r\n");
  if (eol == std::string_view::npos) return refuse(error, "no status line");
  const std::string_view line = head.substr(0, eol);
  if (line.size() < 12 || !line.starts_with("HTTP/1.") || !is_digit(line[7]) || line[8] != ' ' ||
      !is_digit(line[9]) || !is_digit(line[10]) || !is_digit(line[11]) ||
      (line.size() > 12 && line[12] != ' ')) {
    return refuse(error, "a malformed status line");
  }
  ResponseHead response;
  response.minor_version = static_cast<unsigned>(line[7] - '0');
  if (response.minor_version > 1) return refuse(error, "a version other than HTTP/1.0 or 1.1");
  response.status =
      static_cast<unsigned>((line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0'));
  if (response.status < 100 || response.status > 599) {
    return refuse(error, "a status outside 100-599");
  }
  const std::string_view reason = line.size() > 12 ? line.substr(13) : std::string_view();
  for (const char c : reason) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      return refuse(error, "a control character in the reason phrase");
    }
  }
  response.reason = std::string(reason);
  std::string why;
  if (!detail::parse_fields(head.substr(eol + 2), response.headers, why)) {
    return refuse(error, why);
  }
  const HttpHeaders& fields = response.headers;

  // Checked even when there is no body: a HEAD or 304 response's Content-Length is passed on
  // (content_length holds it then too), so it must be one number as well.
  bool has_length = false;
  if (!detail::content_length(fields, has_length, response.content_length, why)) {
    return refuse(error, why);
  }
  const bool close = detail::list_has(fields, "connection", "close");
  response.keep_alive = response.minor_version == 1
                            ? !close
                            : !close && detail::list_has(fields, "connection", "keep-alive");

  // RFC 9112 6.3, in its order. No body: a HEAD's response, 1xx (101 included: what follows is
  // the tunnel), 204, 304. Their Transfer-Encoding, if any, only says what a GET would have had.
  if (method == "HEAD" || response.status < 200 || response.status == 204 ||
      response.status == 304) {
    response.body = BodyFraming::kNone;
    return response;
  }
  const int coding = http1::transfer_coding(fields);
  if (coding != 0) {
    // RFC 9112 6.1 lets Transfer-Encoding override Content-Length in a response, but a message
    // with both is how smuggling starts; and HTTP/1.0 has no chunked coding at all.
    if (has_length) return refuse(error, "both Transfer-Encoding and Content-Length");
    if (response.minor_version == 0) return refuse(error, "Transfer-Encoding in HTTP/1.0");
    if (coding != 1) return refuse(error, "a transfer coding other than chunked");
    response.body = BodyFraming::kChunked;
    return response;
  }
  if (has_length) {
    response.body = BodyFraming::kLength;
    return response;
  }
  response.body = BodyFraming::kUntilClose;
  response.keep_alive = false;
  return response;
}

}  // namespace wsbridge::reverse_proxy
