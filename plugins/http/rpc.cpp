#include "rpc.hpp"

#include "wsbridge/base64.hpp"

#include <algorithm>
#include <cctype>

namespace wsbridge::http {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Decodes %XX escapes for the checks only (the request goes out as the client wrote it).
std::string percent_decoded(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

const nlohmann::json kNullId = nullptr;

constexpr auto kDumpReplace = nlohmann::json::error_handler_t::replace;

}  // namespace

bool reserved_header(std::string_view name) {
  const std::string n = lower(name);
  static const char* const kReserved[] = {"host",
                                          "content-length",
                                          "transfer-encoding",
                                          "connection",
                                          "upgrade",
                                          "te",
                                          "trailer",
                                          "keep-alive",
                                          "expect",
                                          "x-forwarded-for",
                                          "x-forwarded-host",
                                          "x-forwarded-proto",
                                          "forwarded",
                                          "x-request-id"};
  for (const char* r : kReserved) {
    if (n == r) return true;
  }
  return n.starts_with("proxy-") || n.starts_with("x-wsbridge-");
}

bool path_allowed(std::string_view path, const std::vector<std::string>& prefixes,
                  std::string& why) {
  if (!path.starts_with("/")) {
    why = "'path' must start with '/'";
    return false;
  }
  for (const char c : path) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '\\' || c == '#') {
      why = "'path' must not contain spaces, control characters, '\\' or '#'";
      return false;
    }
  }
  const std::string_view raw_path = path.substr(0, path.find('?'));
  const std::string decoded = percent_decoded(raw_path);
  if (decoded.find_first_of(std::string_view("\\\0\r\n", 4)) != std::string::npos) {
    why = "'path' must not encode '\\' or control characters";
    return false;
  }
  // Segment by segment: "." and ".." (even percent-encoded) could leave the allowed prefix once
  // the backend normalizes the path.
  std::string_view rest = decoded;
  while (!rest.empty()) {
    rest.remove_prefix(1);  // the '/'
    const auto next = rest.find('/');
    const std::string_view segment = rest.substr(0, next);
    if (segment == "." || segment == "..") {
      why = "'path' must not contain '.' or '..' segments";
      return false;
    }
    if (next == std::string_view::npos) break;
    rest.remove_prefix(next);
  }
  for (const auto& prefix : prefixes) {
    if (!raw_path.starts_with(prefix)) continue;
    // "/orders" allows "/orders" and "/orders/.." below it, not "/orders-admin".
    if (prefix.ends_with("/") || raw_path.size() == prefix.size() ||
        raw_path[prefix.size()] == '/') {
      return true;
    }
  }
  why = "path " + std::string(raw_path) + " is not allowed on this route";
  return false;
}

std::variant<RpcCall, RpcRefusal> parse_rpc_request(const Frame& frame, const RpcPolicy& policy) {
  auto refuse = [](nlohmann::json id, std::string code, std::string message) {
    return RpcRefusal{std::move(id), std::move(code), std::move(message)};
  };
  if (!frame.is_text()) return refuse(nullptr, "bad_request", "rpc frames are JSON text frames");
  auto doc = nlohmann::json::parse(frame.payload(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return refuse(nullptr, "bad_request", "a request frame must be a JSON object");
  }
  nlohmann::json id = nullptr;
  if (auto it = doc.find("id"); it != doc.end()) {
    if (!it->is_string() && !it->is_number()) {
      return refuse(nullptr, "bad_request", "'id' must be a string or a number");
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
  std::string m = method->get<std::string>();
  std::transform(m.begin(), m.end(), m.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (std::find(policy.methods.begin(), policy.methods.end(), m) == policy.methods.end()) {
    return refuse(id, "forbidden", "method " + m + " is not allowed on this route");
  }
  call.request.method = m;

  const auto path = doc.find("path");
  if (path == doc.end() || !path->is_string()) {
    return refuse(id, "bad_request", "'path' must be a string");
  }
  std::string why;
  const std::string& p = path->get_ref<const std::string&>();
  if (p.size() > 8192) return refuse(id, "bad_request", "'path' is over 8192 bytes");
  if (!path_allowed(p, policy.paths, why)) {
    return refuse(id,
                  p.starts_with("/") && why.ends_with("not allowed on this route") ? "forbidden"
                                                                                   : "bad_request",
                  why);
  }
  call.request.target = p;

  if (auto headers = doc.find("headers"); headers != doc.end() && !headers->is_null()) {
    if (!headers->is_object()) return refuse(id, "bad_request", "'headers' must be an object");
    for (const auto& [name, value] : headers->items()) {
      if (!is_http_token(name)) {
        return refuse(id, "bad_request", "header name \"" + name + "\" is invalid");
      }
      if (reserved_header(name)) {
        return refuse(id, "forbidden", "header " + name + " is set by wsbridge, not by clients");
      }
      if (!value.is_string()) {
        return refuse(id, "bad_request", "header " + name + " must have a string value");
      }
      const std::string& v = value.get_ref<const std::string&>();
      if (!safe_header_value(v)) {
        return refuse(id, "bad_request", "header " + name + " must not contain CR, LF or NUL");
      }
      call.request.headers.push_back({name, v});
    }
  }

  const bool has_type = find_header(call.request.headers, "content-type") != nullptr;
  if (auto body = doc.find("body"); body != doc.end() && !body->is_null()) {
    const std::string encoding = doc.value("body_encoding", "");
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
    const std::string name = lower(h.name);
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
  if (response.body.empty()) {
    out["body"] = nullptr;
  } else if (json_type && nlohmann::json::accept(response.body)) {
    out["body"] = nlohmann::json::parse(response.body);
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
