// Reading an HTTP request as lws 4.1.6 parsed it: header values, the query, the peer address,
// the body framing. Service thread, inside the request's callbacks (lws frees the header table
// after the upgrade).
#pragma once

#include <libwebsockets.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/authenticator.hpp"
#include "handshake/request_framing.hpp"

namespace wsbridge {

// A header's value ("" when absent); repeated lines come joined as lws keeps them.
std::string header(lws* wsi, lws_token_indexes token);
std::optional<std::string> header_if_present(lws* wsi, lws_token_indexes token);
// The Cookie header, its lines joined with "; " (RFC 6265 5.4), or nullopt without one: lws 4.1.6
// joins a Cookie sent as several lines with nothing between them ("a=1" "b=2" -> "a=1b=2").
std::optional<std::string> cookie_header(lws* wsi);
// The server the request named: its Host header, or HTTP/2's :authority (nullopt: neither).
std::optional<std::string> host_header(lws* wsi);
// What the same-origin test of a request's cookies and client certificate reads
// (auth::ambient_credentials_believed): the host the browser named (the X-Forwarded-Host of a
// trusted proxy, `peer_trusted`, else Host), Sec-Fetch-Site, and whether it came over TLS.
void read_origin_context(lws* wsi, bool peer_trusted, auth::HandshakeRequest& request);
// A header lws has no token for, by its lower-case name with the colon ("sec-fetch-site:").
std::optional<std::string> custom_header(lws* wsi, const char* name);
// The request's body framing (request_framing.hpp), from every Content-Length lws collected.
// `length_required`: a POST, PUT or PATCH without a length gets 411; else it is answered as one
// with an empty body, and the connection closed after (body_runs_to_close).
std::optional<FramingRefusal> framing_problem(lws* wsi, bool upgrade, bool length_required = true);
// The body length those Content-Length headers agree on (agreed_content_length), if any.
std::optional<unsigned long long> content_length(lws* wsi);
// RFC 9110 10.1.1: a client that sent "Expect: 100-continue" waits for a 100 before its body
// (curl, for a second, before it sends anyway); called where the body is to be read.
void continue_if_expected(lws* wsi);
// What lws_http_get_uri_and_method() returns: the index of the request's method in lws 4.1.6's
// method_names (with LWS_WITH_HTTP_UNCOMMON_HEADERS, as Debian builds it).
enum LwsMethod : int {
  kLwsGet = 0,
  kLwsPost,
  kLwsOptions,
  kLwsPut,
  kLwsPatch,
  kLwsDelete,
  kLwsConnect,
  kLwsHead,
};
inline constexpr const char* kLwsMethodNames[] = {"GET",   "POST",   "OPTIONS", "PUT",
                                                  "PATCH", "DELETE", "CONNECT", "HEAD"};
// The request's query arguments ("k=v", URL-decoded): lws keeps each as a fragment of
// WSI_TOKEN_HTTP_URI_ARGS.
std::vector<std::string> query_arguments(lws* wsi);
// The value of the query argument `key` (the first one), if there is one.
std::optional<std::string> query_value(lws* wsi, std::string_view key);
// The first of `keys` the query names more than once (the request is then ambiguous: a
// balancer or a log may read the other one), if any.
std::optional<std::string_view> repeated_argument(lws* wsi,
                                                  std::initializer_list<std::string_view> keys);
// Whether the query has `key`=`value`.
inline bool query_has(lws* wsi, std::string_view key, std::string_view value) {
  return query_value(wsi, key) == value;
}
// The client's address; an IPv4-mapped IPv6 address is shown as IPv4.
std::string peer_address(lws* wsi);
// The same for a socket lws has not adopted yet (FILTER_NETWORK_CONNECTION).
std::string peer_address_of_socket(int fd);
// A Sec-WebSocket-Key must be the base64 encoding of 16 bytes (RFC 6455 4.2.1).
bool valid_websocket_key(const std::string& key);

}  // namespace wsbridge
