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

#include "path_rules.hpp"  // which paths a client may reach
#include "wsbridge/frame.hpp"
#include "wsbridge/header_rules.hpp"  // which headers a client may send
#include "wsbridge/http_client.hpp"

namespace wsbridge::http {

// JSON sent to a backend is dumped with invalid UTF-8 replaced (U+FFFD), never thrown on: a
// client's bytes must not turn into an exception on the service thread.
inline constexpr auto kDumpReplace = nlohmann::json::error_handler_t::replace;

struct RpcPolicy {
  std::vector<std::string> methods;  // upper case
  std::vector<std::string> paths;    // allowed prefixes
  // Trusted headers (HeaderClass::kTrusted) that clients may set anyway, canonical names.
  std::vector<std::string> client_headers;
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
// query), checked by check_rpc_path; its headers are the frame's, refused when reserved or
// trusted (header_rules.hpp) unless the policy allows them, or repeated in another spelling; the
// body is a string as is, other JSON values serialized (application/json unless the frame says
// otherwise), or base64 with "body_encoding":"base64".
std::variant<RpcCall, RpcRefusal> parse_rpc_request(const Frame& frame, const RpcPolicy& policy);

Frame response_frame(const nlohmann::json& id, const HttpResponse& response);
Frame error_frame(const nlohmann::json& id, std::string_view code, std::string_view message,
                  std::optional<int> status = std::nullopt);

// Whether `bytes` is valid UTF-8 (a text frame must be).
bool valid_utf8(std::string_view bytes);

}  // namespace wsbridge::http
