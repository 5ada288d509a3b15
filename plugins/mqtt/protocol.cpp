#include "protocol.hpp"

#include "codec.hpp"
#include "topic.hpp"
#include "wsbridge/bounded_json.hpp"

namespace wsbridge::mqtt {

namespace {

using nlohmann::json;

RequestError bad(std::optional<json> id, std::string message) {
  return RequestError{std::move(id), "bad_request", std::move(message)};
}

Frame json_frame(const json& j) {
  return Frame::text(j.dump());
}

}  // namespace

std::variant<Request, RequestError> parse_request(std::string_view text) {
  bool too_deep = false;
  json doc = bounded_json::parse(text, &too_deep);
  if (too_deep) return bad(std::nullopt, std::string(bounded_json::kTooDeep));
  if (doc.is_discarded()) return bad(std::nullopt, "the frame is not valid JSON");
  if (!doc.is_object()) return bad(std::nullopt, "a request must be a JSON object");

  Request r;
  if (auto it = doc.find("id"); it != doc.end()) {
    if (!bounded_json::is_request_id(*it)) {
      return bad(std::nullopt, std::string(bounded_json::kBadRequestId));
    }
    r.id = *it;
  }
  auto type_it = doc.find("type");
  if (type_it == doc.end() || !type_it->is_string()) {
    return bad(r.id, "'type' is missing (subscribe, unsubscribe, publish or ping)");
  }
  const std::string& type = type_it->get_ref<const std::string&>();
  if (type == "ping") {
    r.type = RequestType::kPing;
    return r;
  }
  if (type == "subscribe") {
    r.type = RequestType::kSubscribe;
  } else if (type == "unsubscribe") {
    r.type = RequestType::kUnsubscribe;
  } else if (type == "publish") {
    r.type = RequestType::kPublish;
  } else {
    return bad(r.id, "unknown type \"" + type + "\" (subscribe, unsubscribe, publish or ping)");
  }

  auto topic_it = doc.find("topic");
  if (topic_it == doc.end() || !topic_it->is_string()) {
    return bad(r.id, "'topic' is missing or not a string");
  }
  r.topic = topic_it->get<std::string>();
  const auto problem =
      r.type == RequestType::kPublish ? topic_name_problem(r.topic) : topic_filter_problem(r.topic);
  if (problem) {
    return bad(
        r.id, std::string(r.type == RequestType::kPublish ? "topic " : "topic filter ") + *problem);
  }

  if (auto it = doc.find("qos"); it != doc.end()) {
    if (!it->is_number_integer() || it->get<long long>() < 0 || it->get<long long>() > 2) {
      return bad(r.id, "'qos' must be 0, 1 or 2");
    }
    r.qos = it->get<int>();
  }
  if (r.type != RequestType::kPublish) return r;

  if (auto it = doc.find("retain"); it != doc.end()) {
    if (!it->is_boolean()) return bad(r.id, "'retain' must be true or false");
    r.retain = it->get<bool>();
  }
  auto payload_it = doc.find("payload");
  auto b64_it = doc.find("payload_b64");
  if (payload_it != doc.end() && b64_it != doc.end()) {
    return bad(r.id, "give either 'payload' or 'payload_b64', not both");
  }
  if (b64_it != doc.end()) {
    if (!b64_it->is_string()) return bad(r.id, "'payload_b64' must be a base64 string");
    auto decoded = base64_decode(b64_it->get_ref<const std::string&>());
    if (!decoded) return bad(r.id, "'payload_b64' is not valid base64");
    r.payload = std::move(*decoded);
  } else if (payload_it != doc.end()) {
    // A JSON string travels as its text; any other JSON value as compact JSON.
    r.payload = payload_it->is_string() ? payload_it->get<std::string>() : payload_it->dump();
  }
  return r;
}

Frame ack_frame(const json& id) {
  return json_frame({{"type", "ack"}, {"id", id}});
}

Frame error_frame(const std::optional<json>& id, std::string_view code, std::string_view message) {
  json j = {{"type", "error"}, {"code", code}, {"message", message}};
  if (id) j["id"] = *id;
  return json_frame(j);
}

Frame pong_frame(const std::optional<json>& id) {
  json j = {{"type", "pong"}};
  if (id) j["id"] = *id;
  return json_frame(j);
}

Frame status_frame(bool upstream_up) {
  return json_frame({{"type", "status"}, {"upstream", upstream_up ? "up" : "down"}});
}

Frame dropped_frame(std::uint64_t count) {
  return json_frame({{"type", "status"}, {"dropped", count}});
}

Frame message_frame(std::string_view topic, std::string_view payload, int qos, bool retain) {
  // Built by hand: this runs once per incoming message (not per subscriber), and a valid JSON
  // payload is embedded as it is, without a parse into a DOM and a dump back out.
  std::string out(kFrameHeadroom, '\0');
  out.reserve(kFrameHeadroom + payload.size() + topic.size() + 96);
  out.append(R"({"type":"message","topic":)");
  append_json_string(out, topic);
  // nlohmann's accept() skips a leading UTF-8 BOM and stops at a NUL, neither of which may be
  // embedded in our frame as they are: such payloads travel as JSON strings instead. So does
  // JSON nested deeper than the 128 levels a request may have: a frame of 100,000 levels made
  // a client's JSON.parse fail (Python's), and the client lost the whole message.
  if (!payload.empty() && payload.find('\0') == std::string_view::npos &&
      !payload.starts_with("\xEF\xBB\xBF") && bounded_json::nesting_within(payload) &&
      json::accept(payload)) {
    out.append(R"(,"payload":)");
    out.append(payload);
  } else if (is_valid_utf8(payload)) {
    out.append(R"(,"payload":)");
    append_json_string(out, payload);
  } else {
    out.append(R"(,"payload_b64":")");
    out.append(base64_encode(payload));
    out.push_back('"');
  }
  out.append(R"(,"qos":)");
  out.push_back(static_cast<char>('0' + qos));
  out.append(retain ? R"(,"retain":true})" : R"(,"retain":false})");
  return Frame::adopt(FrameKind::kText, std::move(out));
}

}  // namespace wsbridge::mqtt
