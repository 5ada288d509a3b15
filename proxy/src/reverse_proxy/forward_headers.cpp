// What the reverse proxy writes in the heads it relays (forward_headers.hpp, docs/PROXY.md
// "Headers").
#include "reverse_proxy/forward_headers.hpp"

#include <algorithm>
#include <array>
#include <vector>

#include "reverse_proxy/head_fields.hpp"
#include "reverse_proxy/request_path.hpp"
#include "wsbridge/base64.hpp"
#include "wsbridge/header_rules.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge::reverse_proxy {

namespace {

// RFC 9110 7.6.1, plus the framing fields, which the proxy writes from the framing it forwards.
constexpr std::array<std::string_view, 10> kHopByHop = {"connection",
                                                        "keep-alive",
                                                        "proxy-connection",
                                                        "te",
                                                        "trailer",
                                                        "upgrade",
                                                        "transfer-encoding",
                                                        "content-length",
                                                        "proxy-authenticate",
                                                        "proxy-authorization"};

// Set by the proxy from what it knows; a client's own are believed only from a trusted proxy.
constexpr std::array<std::string_view, 4> kForwarding = {"x-forwarded-for", "x-forwarded-proto",
                                                         "x-forwarded-host", "forwarded"};

bool in(std::string_view name, const auto& names) {
  for (const std::string_view n : names) {
    if (text::iequals(name, n)) return true;
  }
  return false;
}

// The field names a Connection header lists: hop-by-hop for this hop only (RFC 9110 7.6.1).
std::vector<std::string> connection_options(const HttpHeaders& headers) {
  std::vector<std::string> names;
  for (const auto& h : headers) {
    if (!text::iequals(h.name, "connection")) continue;
    std::string_view list = h.value;
    while (true) {
      const auto comma = list.find(',');
      const std::string_view element = text::trim(list.substr(0, comma));
      if (!element.empty()) names.emplace_back(element);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return names;
}

void add(std::string& out, std::string_view name, std::string_view value) {
  if (!safe_header_value(value)) return;  // a value that would end the line never goes out
  out += name;
  out += ": ";
  out += value;
  out += "\r\n";
}

// RFC 7239 4: a value is a token or a quoted-string.
std::string forwarded_value(std::string_view value) {
  if (is_http_token(value)) return std::string(value);
  std::string out = "\"";
  for (const char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

// RFC 7239 6: an IPv6 address in brackets (and so quoted); "unknown" when there is none.
std::string forwarded_node(std::string_view address) {
  if (address.empty()) return "unknown";
  if (address.find(':') != std::string_view::npos && !address.starts_with("[")) {
    return forwarded_value("[" + std::string(address) + "]");
  }
  return forwarded_value(address);
}

}  // namespace

std::string_view standard_reason(unsigned status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 103:
      return "Early Hints";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "";
  }
}

std::string backend_target(const ProxyRoute& route, std::string_view request_target) {
  std::string_view rest = request_target;
  if (route.strip_prefix && route.path != "/") {
    // "/app/x?y" -> "/x?y", "/app?y" -> "?y"; "/%61pp/x" and "//app/x" -> "/x" too.
    const std::size_t end = raw_prefix_end(rest.substr(0, rest.find('?')), route.path);
    if (end != std::string_view::npos) rest.remove_prefix(end);
  }
  // The backend URL's path ("" or "/base", maybe "/base/") before it, with one '/' between.
  std::string_view base = route.backend.path;
  if (base.ends_with("/")) base.remove_suffix(1);
  std::string target(base);
  if (!rest.starts_with("/")) target += '/';
  target += rest;
  return target;
}

std::string backend_request_head(const RequestHead& request, const ProxyRoute& route,
                                 const ForwardContext& context) {
  std::string out;
  out.reserve(512 + request.target.size());
  out += request.method;
  out += ' ';
  out += backend_target(route, request.target);
  out += request.minor_version == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n";

  const std::string* client_host = find_header(request.headers, "host");
  switch (route.host_mode) {
    case HostMode::kClient:
      // An HTTP/1.0 client may send none; the backend still gets one.
      add(out, "Host", client_host != nullptr ? *client_host : route.backend.host_header());
      break;
    case HostMode::kBackend:
      add(out, "Host", route.backend.host_header());
      break;
    case HostMode::kFixed:
      add(out, "Host", route.host_value);
      break;
  }

  std::vector<std::string> options = connection_options(request.headers);
  for (std::string& o : options) o = text::canonical_header_name(o);
  std::vector<std::string> trusted_sent;  // allowed trusted headers already forwarded
  for (const auto& h : request.headers) {
    // By the name as backends may read it: "X_Wsbridge_User" is X-Wsbridge-User to WSGI and CGI,
    // "Content_Length" their CONTENT_LENGTH.
    const std::string name = text::canonical_header_name(h.name);
    if (in(name, kHopByHop) || in(name, options) || in(name, kForwarding) || name == "host" ||
        name.starts_with("x-wsbridge-") || !is_http_token(h.name)) {
      continue;
    }
    // What backends believe because a proxy sets it (X-Real-IP, X-Original-URL, Remote-User,
    // X-HTTP-Method-Override...): a client's own would pass for the proxy's. One the prefix
    // allows goes once, its first value (backends differ on which of two they would take).
    if (http::classify_header(name) == http::HeaderClass::kTrusted) {
      const bool allowed =
          std::find(route.allow_client_headers.begin(), route.allow_client_headers.end(), name) !=
          route.allow_client_headers.end();
      if (!allowed ||
          std::find(trusted_sent.begin(), trusted_sent.end(), name) != trusted_sent.end()) {
        continue;
      }
      trusted_sent.push_back(name);
    }
    add(out, h.name, h.value);
  }

  if (request.body == BodyFraming::kLength) {
    add(out, "Content-Length", std::to_string(request.content_length));
  } else if (request.body == BodyFraming::kChunked) {
    add(out, "Transfer-Encoding", "chunked");
  }
  if (request.websocket_upgrade) {
    add(out, "Connection", "Upgrade");
    add(out, "Upgrade", "websocket");
  } else {
    // A 1.0 request goes out as 1.0, and a 1.0 exchange has no reliable keep-alive.
    add(out, "Connection", backend_asked_to_close(request) ? "close" : "keep-alive");
  }

  // The forwarding fields: what a trusted proxy said before us, then what we saw.
  const std::string host = client_host != nullptr ? *client_host : "";
  const std::string proto = context.tls ? "https" : "http";
  const std::string their_for =
      context.peer_trusted ? joined_header(request.headers, "x-forwarded-for") : "";
  add(out, "X-Forwarded-For",
      their_for.empty() ? context.peer_address : their_for + ", " + context.peer_address);
  const std::string* their_proto =
      context.peer_trusted ? find_last_header(request.headers, "x-forwarded-proto") : nullptr;
  add(out, "X-Forwarded-Proto",
      their_proto != nullptr && !their_proto->empty() ? *their_proto : proto);
  const std::string* their_host =
      context.peer_trusted ? find_last_header(request.headers, "x-forwarded-host") : nullptr;
  if (their_host != nullptr && !their_host->empty()) {
    add(out, "X-Forwarded-Host", *their_host);
  } else if (!host.empty()) {
    add(out, "X-Forwarded-Host", host);
  }
  // RFC 7239: each proxy appends the node it received the request from. After a trusted proxy's
  // own Forwarded that node is the peer (the proxy); otherwise the client as the core knows it
  // (the peer, or the client a trusted proxy named in X-Forwarded-For only).
  const std::string their_forwarded =
      context.peer_trusted ? joined_header(request.headers, "forwarded") : "";
  std::string ours = "for=" + forwarded_node(their_forwarded.empty() ? context.client_address
                                                                     : context.peer_address);
  ours += ";proto=" + proto;
  if (!host.empty()) ours += ";host=" + forwarded_value(host);
  add(out, "Forwarded", their_forwarded.empty() ? ours : their_forwarded + ", " + ours);

  add(out, "X-Wsbridge-Route", route.path);
  const Identity* identity = context.identity;
  if (route.forward_identity && identity != nullptr && !identity->user.empty()) {
    add(out, "X-Wsbridge-User", identity->user);
    if (!identity->auth_method.empty()) add(out, "X-Wsbridge-Auth-Method", identity->auth_method);
    // Claims with invalid UTF-8 in a string (an API key's, from the configuration) are dumped
    // with U+FFFD rather than throwing.
    add(out, "X-Wsbridge-Claims",
        base64url_encode(
            identity->claims.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  }
  out += "\r\n";
  return out;
}

std::string client_response_head(const ResponseHead& response, bool keep_alive,
                                 std::string_view hsts) {
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + ' ';
  // The status line's SP stays even without a reason (RFC 9112 4).
  out += !response.reason.empty() && safe_header_value(response.reason)
             ? std::string_view(response.reason)
             : standard_reason(response.status);
  out += "\r\n";

  // A 101 is the backend's answer to an upgrade: its Connection and Upgrade are the answer.
  const bool switching = response.status == 101;
  const std::vector<std::string> options = connection_options(response.headers);
  for (const auto& h : response.headers) {
    const bool upgrade_field =
        switching && (text::iequals(h.name, "connection") || text::iequals(h.name, "upgrade"));
    if (!upgrade_field && (in(h.name, kHopByHop) || in(h.name, options))) continue;
    if (!is_http_token(h.name)) continue;
    add(out, h.name, h.value);
  }

  if (!hsts.empty() && response.status >= 200 &&
      find_header(response.headers, "strict-transport-security") == nullptr) {
    add(out, "Strict-Transport-Security", hsts);
  }

  const bool keeps = keep_alive && response.body != BodyFraming::kUntilClose;
  switch (response.body) {
    case BodyFraming::kLength:
      add(out, "Content-Length", std::to_string(response.content_length));
      break;
    case BodyFraming::kChunked:
      add(out, "Transfer-Encoding", "chunked");
      break;
    case BodyFraming::kUntilClose:
      break;  // the close ends it for the browser too
    case BodyFraming::kNone:
      // A HEAD's or a 304's Content-Length tells the size of what a GET would get: passed on
      // (1xx and 204 must not carry one).
      if (response.status >= 200 && response.status != 204) {
        if (find_header(response.headers, "content-length") != nullptr) {
          add(out, "Content-Length", std::to_string(response.content_length));
        } else if (response.status != 304 && http1::transfer_coding(response.headers) == 1) {
          // A HEAD's (the other bodiless ones are 1xx, 204 and 304): a GET would have had a
          // chunked body (RFC 9112 6.1), which a client may want to know before it asks.
          add(out, "Transfer-Encoding", "chunked");
        }
      }
      break;
  }
  // Interim responses (1xx) do not end the exchange; a 101's connection becomes the tunnel.
  if (!keeps && response.status >= 200) add(out, "Connection", "close");
  out += "\r\n";
  return out;
}

}  // namespace wsbridge::reverse_proxy
