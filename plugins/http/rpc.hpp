// The rpc mode's frames (docs/PROTOCOL.md, "http routes"): a JSON request frame is checked and
// turned into an HttpRequest; an HTTP response or failure is turned into a response or error
// frame. Pure functions, unit-tested and fuzzed.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "wsbridge/frame.hpp"
#include "wsbridge/http_client.hpp"

namespace wsbridge::http {

struct RpcPolicy {
  std::vector<std::string> methods;  // upper case
  std::vector<std::string> paths;    // allowed prefixes
};

struct RpcCall {
  nlohmann::json id;  // echoed in the answer
  HttpRequest request;
};

struct RpcRefusal {
  nlohmann::json id;  // null when the frame had none (or was not JSON)
  std::string code;   // bad_request, forbidden
  std::string message;
};

// Parses and checks one request frame. The request's target is the frame's path (with its
// query); its headers are the frame's, checked; the body is a string as is, other JSON values
// serialized (application/json unless the frame says otherwise), or base64 with
// "body_encoding":"base64".
std::variant<RpcCall, RpcRefusal> parse_rpc_request(const Frame& frame, const RpcPolicy& policy);

// Whether `path` ("/a/b?q") stays within one of `prefixes` without escaping it: no "..", "."
// or empty-dot segments (also percent-encoded), no backslashes, control characters or spaces.
bool path_allowed(std::string_view path, const std::vector<std::string>& prefixes,
                  std::string& why);

Frame response_frame(const nlohmann::json& id, const HttpResponse& response);
Frame error_frame(const nlohmann::json& id, std::string_view code, std::string_view message,
                  std::optional<int> status = std::nullopt);

// True for header names a client must not set: hop-by-hop and framing headers, and the ones
// wsbridge sets itself to tell the backend who is calling.
bool reserved_header(std::string_view name);

// Whether `bytes` is valid UTF-8 (a text frame must be).
bool valid_utf8(std::string_view bytes);

}  // namespace wsbridge::http
