// What the reverse proxy changes in the heads it relays (RFC 9110 section 7.6): hop-by-hop
// fields are dropped each way (Connection and the fields it names, Keep-Alive, Proxy-Connection,
// TE, Trailer, Upgrade, Proxy-Authenticate, Proxy-Authorization; Transfer-Encoding and
// Content-Length are rewritten from the framing the proxy forwards), the forwarding fields are
// set, and the identity wsbridge authenticated is added. Headers a client sends under names the
// proxy sets itself (X-Wsbridge-*, and the X-Forwarded-* / Forwarded fields of a client that is
// not a trusted proxy) are dropped: a backend must be able to believe them. Pure: unit-tested.
#pragma once

#include <string>
#include <string_view>

#include "reverse_proxy/proxy_route.hpp"
#include "reverse_proxy/response_head.hpp"
#include "wsbridge/plugin.hpp"

namespace wsbridge::reverse_proxy {

// Who sent the request, as the core established it.
struct ForwardContext {
  std::string peer_address;    // the TCP peer
  std::string client_address;  // the client: the peer, or from a trusted proxy's X-Forwarded-For
  bool peer_trusted = false;   // the peer is a [server] trusted_proxies entry
  bool tls = false;            // the request came over https:// / wss://
  // The authenticated identity (null or user empty: anonymous, no identity headers but
  // X-Wsbridge-Route).
  const Identity* identity = nullptr;
};

// The reason phrase of a standard status ("" for others).
std::string_view standard_reason(unsigned status);

// The backend request's target: the request's, with the route's prefix taken off (strip_prefix:
// "/app" -> "/", "/app/x?y" -> "/x?y", "/app?y" -> "/?y") and the backend URL's path put before.
std::string backend_target(const ProxyRoute& route, std::string_view request_target);

// The request head for the backend: request line (HTTP/1.1, or 1.0 for a 1.0 client so that
// the backend never chunks what that client cannot read), the client's end-to-end fields,
// Host (route.host_mode), Content-Length or "Transfer-Encoding: chunked" as the body is framed,
// "Connection: keep-alive" (or "Connection: upgrade" + "Upgrade: websocket" for an upgrade,
// whose Sec-WebSocket-* fields pass unchanged), X-Forwarded-For (the trusted chain + the peer),
// X-Forwarded-Proto, X-Forwarded-Host, Forwarded (RFC 7239: for, proto, host) and the identity:
// X-Wsbridge-User, X-Wsbridge-Auth-Method, X-Wsbridge-Claims (base64url of the claims' JSON),
// X-Wsbridge-Route (the prefix). Values unsafe in a header line are left out.
std::string backend_request_head(const RequestHead& request, const ProxyRoute& route,
                                 const ForwardContext& context);

// Whether the request goes to the backend with "Connection: close" (an HTTP/1.0 one: a 1.0
// exchange has no reliable keep-alive), after which nothing more may be sent on that connection
// (RFC 9112 9.6), whatever the backend answers.
inline bool backend_asked_to_close(const RequestHead& request) {
  return !request.websocket_upgrade && request.minor_version == 0;
}

// The response head for the browser: status line (HTTP/1.1), the backend's end-to-end fields,
// the framing the proxy forwards (Content-Length, or "Transfer-Encoding: chunked" verbatim), and
// "Connection: close" when the browser's connection ends after this response (`keep_alive`
// false). A 101's Upgrade and Connection pass (it is the backend's answer to an upgrade).
// `hsts`: the listener's Strict-Transport-Security value, added to a final response that does
// not carry the backend's own (the backend knows its hosts' policy best).
std::string client_response_head(const ResponseHead& response, bool keep_alive,
                                 std::string_view hsts = {});

}  // namespace wsbridge::reverse_proxy
