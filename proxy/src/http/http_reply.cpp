#include "http/http_reply.hpp"

#include <libwebsockets.h>
#include <strings.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace wsbridge {

std::size_t response_head_room(const HeaderList& headers, std::size_t base) {
  for (const auto& [name, value] : headers) base += name.size() + value.size() + 4;  // ": ", CRLF
  return base;
}

bool body_runs_to_close(lws* wsi) {
  const bool body_method = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0 ||
                           lws_hdr_total_length(wsi, WSI_TOKEN_PUT_URI) > 0 ||
                           lws_hdr_total_length(wsi, WSI_TOKEN_PATCH_URI) > 0;
  return body_method && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0 &&
         lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) <= 0;
}

namespace {

// lws 4.1.6 keeps an HTTP/1.0 connection open when the request's Connection is exactly
// "keep-alive" (server.c): the answer must say so, or the client takes it as the last.
bool kept_alive_http_1_0(lws* wsi) {
  char text[16] = {};
  if (lws_hdr_copy(wsi, text, sizeof text, WSI_TOKEN_HTTP) <= 0 ||
      std::string_view(text) != "HTTP/1.0") {
    return false;
  }
  if (lws_hdr_copy(wsi, text, sizeof text, WSI_TOKEN_CONNECTION) <= 0) return false;
  return strcasecmp(text, "keep-alive") == 0;
}

}  // namespace

bool write_http_reply(lws* wsi, unsigned status, std::string_view content_type,
                      std::string_view body, const HeaderList& given_headers) {
  // RFC 9110 9.3.2: a HEAD answer is the GET answer's head (its Content-Length too, 8.6: not
  // 0), no body. (Written as headers, the length is not counted down: lws expects no body.)
  const std::size_t content_length = body.size();
  if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0) body = {};
  HeaderList extra_headers = given_headers;
  const bool says_connection = std::any_of(given_headers.begin(), given_headers.end(),
                                           [](const auto& h) { return h.first == "Connection:"; });
  if (!says_connection && body_runs_to_close(wsi)) {
    extra_headers.emplace_back("Connection:", "close");
  } else if (!says_connection && kept_alive_http_1_0(wsi)) {
    extra_headers.emplace_back("Connection:", "keep-alive");
  }
  const std::size_t head_room = response_head_room(extra_headers, 1024 + content_type.size());
  std::vector<unsigned char> buf(LWS_PRE + head_room + body.size());
  unsigned char* start = buf.data() + LWS_PRE;
  unsigned char* p = start;
  unsigned char* end = buf.data() + buf.size() - body.size();
  const std::string type(content_type);
  if (lws_add_http_common_headers(wsi, status, type.c_str(), content_length, &p, end) != 0) {
    return false;
  }
  for (const auto& [name, value] : extra_headers) {
    const std::string n(name);
    if (lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(n.c_str()),
                                    reinterpret_cast<const unsigned char*>(value.data()),
                                    static_cast<int>(value.size()), &p, end) != 0) {
      return false;
    }
  }
  if (lws_finalize_http_header(wsi, &p, end) != 0) return false;
  // lws 4.1.6 learns the request's HTTP version only for requests it serves itself, so it
  // answers an upgrade request (always HTTP/1.1) with "HTTP/1.0": strict clients (Python's
  // websockets, for one) reject that status line.
  constexpr std::string_view kOld = "HTTP/1.0 ";
  if (lws_hdr_total_length(wsi, WSI_TOKEN_UPGRADE) > 0 &&
      std::string_view(reinterpret_cast<const char*>(start), kOld.size()) == kOld) {
    start[7] = '1';
  }
  // HTTP/1.1 only (ALPN is restricted to http/1.1): the body may follow the head in one write.
  std::copy(body.begin(), body.end(), p);
  p += body.size();
  const auto len = static_cast<std::size_t>(p - start);
  return lws_write(wsi, start, len, LWS_WRITE_HTTP_HEADERS) == static_cast<int>(len);
}

}  // namespace wsbridge
