#include "reverse_proxy/request_auth.hpp"

#include <algorithm>
#include <optional>

#include "wsbridge/text.hpp"

namespace wsbridge::reverse_proxy {

namespace {

using text::hex_value;

// Every value of the fields named `name`, joined with ", " (RFC 9110 5.3).
std::optional<std::string> joined_if_present(const HttpHeaders& headers, std::string_view name,
                                             std::string_view separator = ", ") {
  std::optional<std::string> out;
  for (const auto& h : headers) {
    if (!text::iequals(h.name, name)) continue;
    out = out ? *out + std::string(separator) + h.value : h.value;
  }
  return out;
}

}  // namespace

std::string percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < in.size() && hex_value(in[i + 1]) >= 0 &&
               hex_value(in[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2]));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

auth::HandshakeRequest handshake_request_of(const RequestHead& head, bool peer_trusted) {
  auth::HandshakeRequest request;
  request.authorization = joined_if_present(head.headers, "Authorization");
  request.cookie =
      joined_if_present(head.headers, "Cookie", "; ");  // (RFC 6265 5.4: one line, "; ")
  if (head.websocket_upgrade) {
    request.origin = joined_if_present(head.headers, "Origin");
    request.host = joined_if_present(head.headers, "Host");
    if (const auto forwarded = joined_if_present(head.headers, "X-Forwarded-Host");
        forwarded && peer_trusted) {
      if (auto named = auth::forwarded_host(*forwarded)) request.host = std::move(named);
    }
    request.sec_fetch_site = joined_if_present(head.headers, "Sec-Fetch-Site");
    if (auto offers = joined_if_present(head.headers, "Sec-WebSocket-Protocol")) {
      request.subprotocols = auth::split_header_list(*offers);
    }
  }
  const auto question = head.target.find('?');
  if (question != std::string::npos) {
    std::string_view query = std::string_view(head.target).substr(question + 1);
    while (!query.empty()) {
      const auto amp = query.find('&');
      const std::string_view arg = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      if (arg.empty()) continue;
      const auto eq = arg.find('=');
      request.query.emplace_back(
          percent_decode(arg.substr(0, eq)),
          eq == std::string_view::npos ? "" : percent_decode(arg.substr(eq + 1)));
    }
  }
  return request;
}

void strip_bearer_offers(RequestHead& head) {
  auto offers = joined_if_present(head.headers, "Sec-WebSocket-Protocol");
  if (!offers) return;
  std::string kept;
  bool any_bearer = false;
  for (const std::string& offer : auth::split_header_list(*offers)) {
    if (offer.starts_with("bearer.")) {
      any_bearer = true;
      continue;
    }
    kept += (kept.empty() ? "" : ", ") + offer;
  }
  if (!any_bearer) return;
  std::erase_if(head.headers, [](const HttpHeader& h) {
    return text::iequals(h.name, "Sec-WebSocket-Protocol");
  });
  if (!kept.empty()) head.headers.push_back({"Sec-WebSocket-Protocol", kept});
}

}  // namespace wsbridge::reverse_proxy
