// RFC 6455's opening handshake fields, checked on their way through the proxy
// (websocket_handshake.hpp says why).
#include "reverse_proxy/websocket_handshake.hpp"

#include <openssl/evp.h>

#include <vector>

#include "reverse_proxy/head_fields.hpp"
#include "wsbridge/base64.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge::reverse_proxy {

namespace {

constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// The values of every field named `name`: a field that must appear once is refused when it is
// repeated, rather than one reading picked (a backend may read the other).
std::vector<std::string_view> values_of(const HttpHeaders& fields, std::string_view name) {
  std::vector<std::string_view> values;
  for (const auto& f : fields) {
    if (text::iequals(f.name, name)) values.emplace_back(f.value);
  }
  return values;
}

}  // namespace

std::optional<HeadError> websocket_request_problem(const RequestHead& request) {
  const auto keys = values_of(request.headers, "sec-websocket-key");
  if (keys.size() != 1) {
    return HeadError{400, keys.empty()
                              ? "a WebSocket upgrade without Sec-WebSocket-Key"
                              : "a WebSocket upgrade with more than one Sec-WebSocket-Key"};
  }
  const auto nonce = base64_decode(keys.front());
  if (!nonce || nonce->size() != 16 || keys.front().size() != 24) {
    return HeadError{400, "a Sec-WebSocket-Key that is not the base64 of 16 bytes"};
  }
  const auto versions = values_of(request.headers, "sec-websocket-version");
  if (versions.size() != 1 || versions.front() != "13") {
    return HeadError{426, "a WebSocket upgrade whose Sec-WebSocket-Version is not 13"};
  }
  return std::nullopt;
}

std::string websocket_accept_for(std::string_view key) {
  std::string input(key);
  input.append(kWebSocketGuid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha1(), nullptr);
  return base64_encode(std::string_view(reinterpret_cast<const char*>(digest), len));
}

std::optional<std::string> websocket_switch_problem(const ResponseHead& response,
                                                    const RequestHead& request) {
  if (!request.websocket_upgrade) return "the request asked for no upgrade";
  if (!detail::list_has(response.headers, "upgrade", "websocket")) {
    return "its Upgrade does not name websocket";
  }
  if (!detail::list_has(response.headers, "connection", "upgrade")) {
    return "its Connection does not name upgrade";
  }
  const auto accepts = values_of(response.headers, "sec-websocket-accept");
  if (accepts.size() != 1) {
    return accepts.empty() ? "it has no Sec-WebSocket-Accept"
                           : "it has more than one Sec-WebSocket-Accept";
  }
  const auto keys = values_of(request.headers, "sec-websocket-key");
  if (keys.size() != 1 || accepts.front() != websocket_accept_for(keys.front())) {
    return "its Sec-WebSocket-Accept is not the one for the request's key";
  }
  return std::nullopt;
}

}  // namespace wsbridge::reverse_proxy
