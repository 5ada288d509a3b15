#include "admin/admin_api.hpp"

#include "wsbridge/base64.hpp"

#include <charconv>
#include <nlohmann/json.hpp>

namespace wsbridge {

namespace {

AdminReply error(unsigned status, std::string_view code, std::string_view message) {
  return AdminReply{status, nlohmann::json{{"error", code}, {"message", message}}.dump() + "\n"};
}

std::optional<std::uint64_t> parse_id(std::string_view text) {
  std::uint64_t id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return id;
}

// "a=1&b=x" -> value of `key` (no percent-decoding needed for the numbers and short reasons used).
std::optional<std::string> query_value(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == key) {
      std::string value(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
      for (auto& c : value) {
        if (c == '+') c = ' ';
      }
      return value;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

AdminReply push(std::string_view body, SessionDirectory& sessions) {
  const auto doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_discarded()) return error(400, "bad_json", "the body is not valid JSON");
  if (!doc.is_object()) return error(400, "bad_request", "the body must be a JSON object");
  PushTarget target;
  int targets = 0;
  if (auto it = doc.find("connection"); it != doc.end()) {
    ++targets;
    if (!it->is_number_unsigned()) {
      return error(400, "bad_request", "'connection' must be a connection id (a number)");
    }
    target.kind = PushTarget::Kind::kConnection;
    target.connection = it->get<std::uint64_t>();
  }
  if (auto it = doc.find("user"); it != doc.end()) {
    ++targets;
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      return error(400, "bad_request", "'user' must be a non-empty string");
    }
    target.kind = PushTarget::Kind::kUser;
    target.name = it->get<std::string>();
  }
  if (auto it = doc.find("route"); it != doc.end()) {
    ++targets;
    if (!it->is_string()) return error(400, "bad_request", "'route' must be a route path");
    target.kind = PushTarget::Kind::kRoute;
    target.name = it->get<std::string>();
  }
  if (targets != 1) {
    return error(400, "bad_request", "give exactly one of 'connection', 'user' or 'route'");
  }
  auto data = doc.find("data");
  if (data == doc.end()) return error(400, "bad_request", "'data' is missing");
  const std::string encoding = doc.value("encoding", "");
  Frame frame;
  if (encoding == "base64") {
    if (!data->is_string()) return error(400, "bad_request", "base64 'data' must be a string");
    auto bytes = base64_decode(data->get_ref<const std::string&>());
    if (!bytes) return error(400, "bad_request", "'data' is not valid base64");
    frame = Frame::binary(*bytes);
  } else if (encoding.empty()) {
    // A string goes as it is (a text frame); any other JSON value as its serialization.
    frame = Frame::text(data->is_string() ? data->get_ref<const std::string&>() : data->dump());
  } else {
    return error(400, "bad_request", "'encoding' must be \"base64\" when given");
  }
  const std::size_t delivered = sessions.push(target, frame);
  if (target.kind == PushTarget::Kind::kConnection && delivered == 0) {
    return error(404, "not_found", "no open connection " + std::to_string(target.connection));
  }
  return AdminReply{200, nlohmann::json{{"delivered", delivered}}.dump() + "\n"};
}

}  // namespace

AdminReply handle_admin_api(std::string_view method, std::string_view target, std::string_view body,
                            SessionDirectory& sessions) {
  const auto q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? "" : target.substr(q + 1);
  if (path == "/api/v1/push") {
    if (method != "POST") return error(405, "method_not_allowed", "use POST");
    return push(body, sessions);
  }
  if (path == "/api/v1/connections") {
    if (method != "GET") return error(405, "method_not_allowed", "use GET");
    nlohmann::json list = nlohmann::json::array();
    for (const auto& s : sessions.list_sessions()) {
      list.push_back({{"id", s.id},
                      {"user", s.user},
                      {"route", s.route},
                      {"remote_address", s.remote_address},
                      {"since", s.since_unix_seconds},
                      {"messages_in", s.messages_in},
                      {"messages_out", s.messages_out},
                      {"bytes_in", s.bytes_in},
                      {"bytes_out", s.bytes_out}});
    }
    return AdminReply{200, nlohmann::json{{"connections", list}}.dump() + "\n"};
  }
  constexpr std::string_view kOne = "/api/v1/connections/";
  if (path.starts_with(kOne)) {
    if (method != "DELETE") return error(405, "method_not_allowed", "use DELETE");
    const auto id = parse_id(path.substr(kOne.size()));
    if (!id) return error(400, "bad_request", "the connection id must be a number");
    std::uint16_t code = 1000;
    if (auto c = query_value(query, "code")) {
      const auto n = parse_id(*c);
      // Codes an application may send (RFC 6455 7.4): 1000, 1001, 1008, 1011, 1013, 3000-4999.
      if (!n || !(*n == 1000 || *n == 1001 || *n == 1008 || *n == 1011 || *n == 1013 ||
                  (*n >= 3000 && *n <= 4999))) {
        return error(400, "bad_request",
                     "'code' must be 1000, 1001, 1008, 1011, 1013 or 3000-4999");
      }
      code = static_cast<std::uint16_t>(*n);
    }
    std::string reason = query_value(query, "reason").value_or("closed by the admin API");
    if (reason.size() > 123) return error(400, "bad_request", "'reason' is over 123 bytes");
    if (!sessions.close_session(*id, code, reason)) {
      return error(404, "not_found", "no open connection " + std::to_string(*id));
    }
    return AdminReply{200, nlohmann::json{{"closed", *id}}.dump() + "\n"};
  }
  return error(404, "not_found", "no such admin endpoint");
}

}  // namespace wsbridge
