#include "shard/lws_request.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "wsbridge/text.hpp"

namespace wsbridge {

std::string header(lws* wsi, lws_token_indexes token) {
  const int len = lws_hdr_total_length(wsi, token);
  if (len <= 0) return {};
  std::string out(static_cast<std::size_t>(len) + 1, '\0');
  const int n = lws_hdr_copy(wsi, out.data(), len + 1, token);
  if (n < 0) return {};
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<std::string> custom_header(lws* wsi, const char* name) {
  const int name_len = static_cast<int>(std::strlen(name));
  const int len = lws_hdr_custom_length(wsi, name, name_len);
  if (len < 0) return std::nullopt;
  std::string out(static_cast<std::size_t>(len) + 1, '\0');
  if (lws_hdr_custom_copy(wsi, out.data(), len + 1, name, name_len) < 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(len));
  return out;
}

std::optional<std::string> header_if_present(lws* wsi, lws_token_indexes token) {
  if (lws_hdr_total_length(wsi, token) <= 0) return std::nullopt;
  return header(wsi, token);
}

namespace {
// Every fragment lws keeps under `token`, in order: one per header line, one per query argument
// (WSI_TOKEN_HTTP_URI_ARGS). An empty one ("?&s=...", "a=1&&b=2") is a fragment of length 0, not
// the end: only the copy tells that there is no fragment `i` (-1).
std::vector<std::string> fragments(lws* wsi, lws_token_indexes token) {
  std::vector<std::string> out;
  for (int i = 0;; ++i) {
    const int len = std::max(lws_hdr_fragment_length(wsi, token, i), 0);
    std::string fragment(static_cast<std::size_t>(len) + 1, '\0');
    if (lws_hdr_copy_fragment(wsi, fragment.data(), len + 1, token, i) < 0) break;
    fragment.resize(static_cast<std::size_t>(len));
    out.push_back(std::move(fragment));
  }
  return out;
}

// Every Content-Length header lws collected, as sent, up to the first empty one.
std::vector<std::string> content_length_headers(lws* wsi) {
  std::vector<std::string> lengths = fragments(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
  lengths.erase(std::find(lengths.begin(), lengths.end(), std::string()), lengths.end());
  return lengths;
}

std::vector<std::string> non_empty_fragments(lws* wsi, lws_token_indexes token) {
  std::vector<std::string> kept = fragments(wsi, token);
  std::erase(kept, std::string());
  return kept;
}
}  // namespace

std::optional<FramingRefusal> framing_problem(lws* wsi, bool upgrade, bool length_required) {
  const bool post_put_or_patch = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0 ||
                                 lws_hdr_total_length(wsi, WSI_TOKEN_PUT_URI) > 0 ||
                                 lws_hdr_total_length(wsi, WSI_TOKEN_PATCH_URI) > 0;
  const RequestBodyKind kind = upgrade ? RequestBodyKind::kUpgrade
                               : post_put_or_patch && length_required
                                   ? RequestBodyKind::kLengthRequired
                                   : RequestBodyKind::kLengthIfSaid;
  return request_framing_problem(content_length_headers(wsi),
                                 header_if_present(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING), kind);
}

std::optional<unsigned long long> content_length(lws* wsi) {
  return agreed_content_length(content_length_headers(wsi));
}

std::optional<std::string> host_header(lws* wsi) {
  if (auto host = header_if_present(wsi, WSI_TOKEN_HOST)) return host;
  return header_if_present(wsi, WSI_TOKEN_HTTP_COLON_AUTHORITY);
}

void read_origin_context(lws* wsi, bool peer_trusted, auth::HandshakeRequest& request) {
  request.host = host_header(wsi);
  if (peer_trusted) {
    if (const auto forwarded = custom_header(wsi, "x-forwarded-host:")) {
      if (auto named = auth::forwarded_host(*forwarded)) request.host = std::move(named);
    }
  }
  request.sec_fetch_site = custom_header(wsi, "sec-fetch-site:");
  request.tls = lws_is_ssl(wsi) != 0;
}

std::optional<std::string> cookie_header(lws* wsi) {
  if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE) <= 0) return std::nullopt;
  std::string joined;
  for (const std::string& line : non_empty_fragments(wsi, WSI_TOKEN_HTTP_COOKIE)) {
    if (!joined.empty()) joined += "; ";
    joined += line;
  }
  return joined;
}

void continue_if_expected(lws* wsi) {
  // (Repeated lines come joined with commas: "100-continue,100-continue" expects it too.)
  if (!text::list_contains(header(wsi, WSI_TOKEN_HTTP_EXPECT), "100-continue")) return;
  // ... ignored in an HTTP/1.0 request (RFC 9110 10.1.1): such a client cannot read a 100. (lws
  // files the request line's version under WSI_TOKEN_HTTP.)
  if (header(wsi, WSI_TOKEN_HTTP) == "HTTP/1.0") return;
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  unsigned char buf[LWS_PRE + kContinue.size()];
  std::memcpy(buf + LWS_PRE, kContinue.data(), kContinue.size());
  // (Raw bytes on lws' send path, TLS included; whatever the socket does not take now lws sends
  // before anything written after it.)
  lws_write(wsi, buf + LWS_PRE, kContinue.size(), LWS_WRITE_HTTP);
}

std::vector<std::string> query_arguments(lws* wsi) {
  return non_empty_fragments(wsi, WSI_TOKEN_HTTP_URI_ARGS);
}

namespace {
std::string shown_address(std::string_view addr) {
  if (addr.starts_with("::ffff:") && addr.find('.') != std::string_view::npos) {
    addr.remove_prefix(7);  // IPv4-mapped IPv6: show the IPv4 address
  }
  return std::string(addr);
}
}  // namespace

std::string peer_address(lws* wsi) {
  char buf[64] = {0};
  lws_get_peer_simple(wsi, buf, sizeof buf);
  return shown_address(buf);
}

std::string peer_address_of_socket(int fd) {
  char buf[64] = {0};
  lws_get_peer_simple_fd(fd, buf, sizeof buf);
  return shown_address(buf);
}

bool valid_websocket_key(const std::string& key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  return std::all_of(key.begin(), key.begin() + 22, [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/';
  });
}

std::optional<std::string> query_value(lws* wsi, std::string_view key) {
  for (const std::string& arg : query_arguments(wsi)) {
    const auto eq = arg.find('=');
    if (std::string_view(arg).substr(0, eq) == key) {
      return eq == std::string::npos ? std::string() : arg.substr(eq + 1);
    }
  }
  return std::nullopt;
}

std::optional<std::string_view> repeated_argument(lws* wsi,
                                                  std::initializer_list<std::string_view> keys) {
  const std::vector<std::string> arguments = query_arguments(wsi);
  for (const std::string_view key : keys) {
    const auto named = std::count_if(arguments.begin(), arguments.end(), [&](const std::string& a) {
      return std::string_view(a).substr(0, a.find('=')) == key;
    });
    if (named > 1) return key;
  }
  return std::nullopt;
}

}  // namespace wsbridge
