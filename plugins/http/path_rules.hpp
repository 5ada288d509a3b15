// The rpc mode's path check: a client's request path must stay below one of the route's
// allowed prefixes however the backend reads it. Backends differ: Tomcat, Jetty and Spring drop
// path parameters (";...") so "/api/..;/admin" is "/api/../admin" to them, some decode "%2f" into
// a separator or decode twice, Windows servers take '\' for '/', and Unicode normalisation turns
// a fullwidth dot into '.'. Rather than guess one backend's reading, every path that any of them
// could read differently from its plain form is refused.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wsbridge::http {

enum class PathVerdict : std::uint8_t {
  kAllowed,
  kMalformed,  // a shape refused on every route: bad_request
  kOutside,    // well formed, but below none of the prefixes: forbidden
};

struct PathCheck {
  PathVerdict verdict = PathVerdict::kAllowed;
  std::string why;  // for the error frame when not allowed
};

// `target` is the frame's "path": "/a/b?query". The part before '?' must start with '/', and
// neither it nor any of its percent-decodings (up to kMaxDecodings deep: "%252e" is "." to a
// backend that decodes twice) may contain: control characters, '\', ';' (path parameters), "//",
// a segment made only of dots (".", "..", "..." and with spaces), an encoded '/', invalid UTF-8
// (overlong forms such as "%c0%ae"), or a character that Unicode normalisation turns into
// '.', '/', '\', ';' or '%'. '%' must begin a %XX escape. The whole target must not contain
// spaces, control characters, '\' or '#'. Then the raw path (as written, not decoded) must equal
// a prefix, or continue it after a '/' ("/orders" allows "/orders/1", not "/orders-admin").
PathCheck check_rpc_path(std::string_view target, const std::vector<std::string>& prefixes);

// check_rpc_path(...).verdict == kAllowed; `why` gets the reason otherwise.
bool path_allowed(std::string_view target, const std::vector<std::string>& prefixes,
                  std::string& why);

inline constexpr int kMaxDecodings = 4;

}  // namespace wsbridge::http
