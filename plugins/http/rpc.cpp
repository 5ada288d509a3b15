#include "rpc.hpp"

#include "wsbridge/text.hpp"

#include "wsbridge/base64.hpp"
#include "wsbridge/bounded_json.hpp"

#include <algorithm>
#include <unordered_set>

namespace wsbridge::http {

namespace {

// As Apache's LimitRequestFields: what a legacy backend takes, and a bound on the work a frame
// can ask for (each name is canonicalized and checked).
constexpr std::size_t kMaxRequestHeaders = 100;

// Why a client may not send header `name` on this route, or nullopt when it may.
std::optional<std::string> header_refusal(std::string_view name, const RpcPolicy& policy) {
  switch (classify_header(name)) {
    case HeaderClass::kReserved:
      return "header " + describe_header(name) +
             " is set by wsbridge or by the HTTP connection, not by clients";
    case HeaderClass::kTrusted: {
      const auto& allowed = policy.client_headers;
      if (std::find(allowed.begin(), allowed.end(), canonical_header_name(name)) != allowed.end()) {
        return std::nullopt;
      }
      return "header " + describe_header(name) +
             " is trusted by backends and not allowed on this route (see allow_client_headers)";
    }
    case HeaderClass::kOrdinary:
      break;
  }
  return std::nullopt;
}

}  // namespace

std::variant<RpcCall, RpcRefusal> parse_rpc_request(const Frame& frame, const RpcPolicy& policy) {
  auto refuse = [](nlohmann::json id, std::string code, std::string message) {
    return RpcRefusal{std::move(id), std::move(code), std::move(message)};
  };
  if (!frame.is_text()) return refuse(nullptr, "bad_request", "rpc frames are JSON text frames");
  bool too_deep = false;
  auto doc = bounded_json::parse(frame.payload(), &too_deep);
  if (too_deep) return refuse(nullptr, "bad_request", std::string(bounded_json::kTooDeep));
  if (doc.is_discarded() || !doc.is_object()) {
    return refuse(nullptr, "bad_request", "a request frame must be a JSON object");
  }
  nlohmann::json id = nullptr;
  if (auto it = doc.find("id"); it != doc.end()) {
    if (!bounded_json::is_request_id(*it)) {
      return refuse(nullptr, "bad_request", std::string(bounded_json::kBadRequestId));
    }
    id = *it;
  }
  const auto type = doc.find("type");
  if (type == doc.end() || !type->is_string() || *type != "request") {
    return refuse(id, "bad_request", "expected {\"type\":\"request\",...}");
  }
  if (id.is_null()) return refuse(id, "bad_request", "a request needs an 'id' for its answer");

  RpcCall call;
  call.id = id;
  const auto method = doc.find("method");
  if (method == doc.end() || !method->is_string()) {
    return refuse(id, "bad_request", "'method' must be a string");
  }
  const std::string m = text::upper(method->get<std::string>());
  if (std::find(policy.methods.begin(), policy.methods.end(), m) == policy.methods.end()) {
    return refuse(id, "forbidden", "method " + m + " is not allowed on this route");
  }
  call.request.method = m;

  const auto path = doc.find("path");
  if (path == doc.end() || !path->is_string()) {
    return refuse(id, "bad_request", "'path' must be a string");
  }
  const std::string& p = path->get_ref<const std::string&>();
  if (p.size() > 8192) return refuse(id, "bad_request", "'path' is over 8192 bytes");
  if (PathCheck check = check_rpc_path(p, policy.paths); check.verdict != PathVerdict::kAllowed) {
    return refuse(id, check.verdict == PathVerdict::kOutside ? "forbidden" : "bad_request",
                  std::move(check.why));
  }
  call.request.target = p;

  if (auto headers = doc.find("headers"); headers != doc.end() && !headers->is_null()) {
    if (!headers->is_object()) return refuse(id, "bad_request", "'headers' must be an object");
    if (headers->size() > kMaxRequestHeaders) {
      return refuse(id, "bad_request",
                    "at most " + std::to_string(kMaxRequestHeaders) + " headers per request");
    }
    std::unordered_set<std::string> seen;  // canonical names
    for (const auto& [name, value] : headers->items()) {
      if (!is_http_token(name)) {
        return refuse(id, "bad_request", "header name \"" + name + "\" is invalid");
      }
      if (auto why = header_refusal(name, policy)) return refuse(id, "forbidden", *why);
      if (!seen.insert(canonical_header_name(name)).second) {
        return refuse(id, "bad_request",
                      "header " + describe_header(name) + " is given twice (in two spellings)");
      }
      if (!value.is_string()) {
        return refuse(id, "bad_request", "header " + name + " must have a string value");
      }
      const std::string& v = value.get_ref<const std::string&>();
      // RFC 9110 5.5: no control character but HTAB (CR, LF and NUL would end the line).
      if (std::any_of(v.begin(), v.end(),
                      [](char c) { return c != '\t' && text::is_ascii_control(c); })) {
        return refuse(id, "bad_request",
                      "header " + name + " must not contain control characters (but tabs)");
      }
      call.request.headers.push_back({name, v});
    }
  }

  const bool has_type = std::any_of(
      call.request.headers.begin(), call.request.headers.end(),
      [](const HttpHeader& h) { return canonical_header_name(h.name) == "content-type"; });
  if (auto body = doc.find("body"); body != doc.end() && !body->is_null()) {
    const auto encoding_it = doc.find("body_encoding");
    if (encoding_it != doc.end() && !encoding_it->is_string()) {
      return refuse(id, "bad_request", "'body_encoding' must be \"base64\" when given");
    }
    const std::string_view encoding = bounded_json::string_member(doc, "body_encoding");
    if (encoding == "base64") {
      if (!body->is_string()) return refuse(id, "bad_request", "a base64 'body' must be a string");
      auto bytes = base64_decode(body->get_ref<const std::string&>());
      if (!bytes) return refuse(id, "bad_request", "'body' is not valid base64");
      call.request.body = std::move(*bytes);
      if (!has_type) call.request.headers.push_back({"Content-Type", "application/octet-stream"});
    } else if (!encoding.empty()) {
      return refuse(id, "bad_request", "'body_encoding' must be \"base64\" when given");
    } else if (body->is_string()) {
      call.request.body = body->get<std::string>();
      if (!has_type) {
        call.request.headers.push_back({"Content-Type", "text/plain; charset=utf-8"});
      }
    } else {
      call.request.body = body->dump();
      if (!has_type) call.request.headers.push_back({"Content-Type", "application/json"});
    }
  }
  return call;
}

Frame response_frame(const nlohmann::json& id, const HttpResponse& response) {
  nlohmann::json headers = nlohmann::json::object();
  for (const auto& h : response.headers) {
    const std::string name = text::lower(h.name);
    if (name == "connection" || name == "keep-alive" || name == "transfer-encoding") continue;
    auto it = headers.find(name);
    if (it == headers.end()) {
      headers[name] = h.value;
    } else {
      *it = it->get<std::string>() + ", " + h.value;
    }
  }
  nlohmann::json out = {{"type", "response"},
                        {"id", id},
                        {"status", response.status},
                        {"headers", std::move(headers)}};
  const std::string* type = find_header(response.headers, "content-type");
  const bool json_type = type != nullptr && (type->starts_with("application/json") ||
                                             type->find("+json") != std::string::npos);
  // (A JSON body nested too deep to embed safely travels as its text.)
  nlohmann::json body = json_type ? bounded_json::parse(response.body) : nlohmann::json();
  if (response.body.empty()) {
    out["body"] = nullptr;
  } else if (json_type && !body.is_discarded()) {
    out["body"] = std::move(body);
  } else if (valid_utf8(response.body)) {
    out["body"] = response.body;
  } else {
    out["body"] = base64_encode(response.body);
    out["body_encoding"] = "base64";
  }
  return Frame::text(out.dump(-1, ' ', false, kDumpReplace));
}

Frame error_frame(const nlohmann::json& id, std::string_view code, std::string_view message,
                  std::optional<int> status) {
  nlohmann::json out = {{"type", "error"}};
  if (!id.is_null()) out["id"] = id;
  out["code"] = code;
  out["message"] = message;
  if (status) out["status"] = *status;
  return Frame::text(out.dump(-1, ' ', false, kDumpReplace));
}

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are invalid.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

}  // namespace wsbridge::http
