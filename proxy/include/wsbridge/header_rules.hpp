// Which header names a client (or a route's configuration) may send to an http backend. Names are
// compared in their canonical form because backends do not all read them as written: WSGI, CGI
// and many frameworks turn "X-Wsbridge-User" and "X_Wsbridge_User" into the same
// HTTP_X_WSBRIDGE_USER, so a check on the spelling alone lets a client forge a header it is
// refused.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wsbridge::http {

// Lower case, and every character other than a letter or digit read as '-':
// "X_Forwarded.For" -> "x-forwarded-for".
std::string canonical_header_name(std::string_view name);

enum class HeaderClass : std::uint8_t {
  kOrdinary,
  // Hop-by-hop and framing headers, and those wsbridge sets itself to tell the backend who is
  // calling (X-Wsbridge-*, X-Forwarded-For, X-Request-Id): never from a client or a route's
  // static headers.
  kReserved,
  // Headers backends believe because a proxy in front of them sets them: method and URL
  // overrides (X-HTTP-Method-Override, X-Original-URL), the client's address, host or scheme
  // (X-Real-IP, Forwarded, X-Forwarded-Proto), the user of an auth proxy (X-Remote-User,
  // X-Amzn-Oidc-*). Refused from clients unless the route lists them in `allow_client_headers`;
  // a route's static headers may set them.
  kTrusted,
};

// The class of `name` in any spelling (case, '_' or '.' for '-').
HeaderClass classify_header(std::string_view name);

// Whether `name`, in any spelling, asks a backend to take the request as another method
// (X-HTTP-Method-Override and the like): a GET carrying one may act as a POST.
bool overrides_method(std::string_view name);

// True for reserved names (HeaderClass::kReserved) in any spelling.
bool reserved_header(std::string_view name);

// "X_Real_IP" -> "X_Real_IP (read by backends as x-real-ip)"; a name already canonical (up to
// case) is returned as it is. For error messages.
std::string describe_header(std::string_view name);

// Whether the on_connect hook's body may show a client's handshake header: not the handshake's
// own mechanics, not a name wsbridge uses for itself (X-Wsbridge-*), and no reserved or trusted
// header under a disguised spelling ("X_Forwarded_For"), which no proxy in front of wsbridge
// would send. Trusted headers in their usual spelling stay: a proxy in front may have set them.
bool hook_may_see_header(std::string_view name);

}  // namespace wsbridge::http
