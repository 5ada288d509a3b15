#include "admin/admin_api.hpp"

#include "cluster/instance_identity.hpp"
#include "wsbridge/utf8.hpp"

#include "wsbridge/base64.hpp"
#include "wsbridge/bounded_json.hpp"

#include <charconv>
#include <nlohmann/json.hpp>
#include <variant>

namespace wsbridge {

namespace {

AdminReply error(unsigned status, std::string_view code, std::string_view message) {
  return AdminReply{
      status, nlohmann::json{{"error", code}, {"message", message}}.dump() + "\n", {}};
}

// A request for another instance that could not be handed to the cluster's broker.
AdminReply control_channel_down() {
  return error(503, "cluster_unavailable",
               "the cluster's control channel is down: the request was not forwarded");
}

// What a request for one other instance's connection got: 202 once handed to the broker.
AdminReply forwarded_reply(Forwarded forwarded, const std::string& instance,
                           const std::string& connection) {
  switch (forwarded) {
    case Forwarded::kSent:
      return AdminReply{202, nlohmann::json{{"forwarded_to", instance}}.dump() + "\n", {}};
    case Forwarded::kNotUp:
      return error(404, "not_found",
                   "connection " + connection + " is instance " + instance +
                       "'s, and no instance of that name is up in the cluster");
    case Forwarded::kChannelDown:
      break;
  }
  return control_channel_down();
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

struct PushRequest {
  PushTarget target;
  std::string instance;  // the owner, for a push by connection
  Frame frame;
};

// The push body's target and frame, or the 400 that explains what is wrong with it.
std::variant<PushRequest, AdminReply> read_push(const nlohmann::json& doc,
                                                std::string_view this_instance) {
  if (!doc.is_object()) return error(400, "bad_request", "the body must be a JSON object");
  PushRequest push;
  PushTarget& target = push.target;
  int targets = 0;
  if (auto it = doc.find("connection"); it != doc.end()) {
    ++targets;
    std::optional<GlobalConnectionId> id;
    if (it->is_number_unsigned()) {
      id = GlobalConnectionId{it->get<std::uint64_t>(), std::string(this_instance)};
    } else if (it->is_string()) {
      id = parse_connection_id(it->get_ref<const std::string&>(), this_instance);
    }
    if (!id) {
      return error(400, "bad_request",
                   "'connection' must be a connection id (\"42@instance\", or a number for "
                   "this instance)");
    }
    target.kind = PushTarget::Kind::kConnection;
    target.connection = id->number;
    push.instance = id->instance;
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
  const auto encoding = doc.find("encoding");
  if (encoding != doc.end() && *encoding == "base64") {
    if (!data->is_string()) return error(400, "bad_request", "base64 'data' must be a string");
    auto bytes = base64_decode(data->get_ref<const std::string&>());
    if (!bytes) return error(400, "bad_request", "'data' is not valid base64");
    push.frame = Frame::binary(*bytes);
  } else if (encoding == doc.end()) {
    // A string goes as it is (a text frame); any other JSON value as its serialization.
    push.frame =
        Frame::text(data->is_string() ? data->get_ref<const std::string&>() : data->dump());
  } else {
    return error(400, "bad_request", "'encoding' must be \"base64\" when given");
  }
  return push;
}

AdminReply push(std::string_view body, const AdminContext& context) {
  bool too_deep = false;
  const auto doc = bounded_json::parse(body, &too_deep);
  if (too_deep) return error(400, "bad_json", std::string(bounded_json::kTooDeep));
  if (doc.is_discarded()) return error(400, "bad_json", "the body is not valid JSON");
  auto read = read_push(doc, context.instance);
  if (auto* refusal = std::get_if<AdminReply>(&read)) return std::move(*refusal);
  const PushRequest& request = std::get<PushRequest>(read);
  const PushTarget& target = request.target;
  if (target.kind == PushTarget::Kind::kConnection && request.instance != context.instance) {
    const std::string id = format_connection_id(target.connection, request.instance);
    if (context.cluster == nullptr) {
      return error(404, "not_found",
                   "connection " + id + " is another instance's, and this one has no [cluster]");
    }
    // (Its owner knows whether it is open: the answer cannot wait for it.)
    return forwarded_reply(context.cluster->push_to(request.instance, doc), request.instance, id);
  }
  const PushOutcome outcome = context.sessions.push(target, request.frame);
  if (target.kind == PushTarget::Kind::kConnection) {
    const std::string id = format_connection_id(target.connection, context.instance);
    if (outcome.queue_full > 0) {
      // Not "delivered": its queue had no room (it does not read fast enough). A push is no
      // droppable message, so under either slow_consumer policy the connection is closed with
      // 1013 unless older droppable messages made room for it.
      return error(503, "queue_full",
                   "connection " + id +
                       " is not reading fast enough: its queue is full, and it is closed (1013) "
                       "unless discarding older droppable messages made room");
    }
    if (outcome.queued == 0) return error(404, "not_found", "no open connection " + id);
    return AdminReply{200, nlohmann::json{{"delivered", outcome.queued}}.dump() + "\n", {}};
  }
  nlohmann::json answer{{"delivered", outcome.queued}};
  if (outcome.queue_full > 0) answer["queue_full"] = outcome.queue_full;
  if (context.cluster != nullptr) {
    // "delivered" counts this instance's; the others deliver theirs. False: they get nothing
    // (the control channel is down), which the answer says rather than failing what was done.
    answer["cluster"] = context.cluster->push_everywhere(doc);
  }
  return AdminReply{200, answer.dump() + "\n", {}};
}

AdminReply list(std::string_view query, const AdminContext& context) {
  const auto scope = query_value(query, "scope").value_or("instance");
  if (scope != "instance" && scope != "cluster") {
    return error(400, "bad_request", "'scope' is \"instance\" or \"cluster\"");
  }
  nlohmann::json entries = session_entries(context.sessions.list_sessions(), context.instance);
  if (scope == "instance") {
    return AdminReply{200, nlohmann::json{{"connections", std::move(entries)}}.dump() + "\n", {}};
  }
  nlohmann::json instances{{"answered", {context.instance}}, {"missing", nlohmann::json::array()}};
  if (context.cluster == nullptr) {
    nlohmann::json doc{{"connections", std::move(entries)}, {"instances", std::move(instances)}};
    return AdminReply{200, doc.dump() + "\n", {}};
  }
  AdminReply reply;
  reply.later = [cluster = context.cluster, entries = std::move(entries),
                 self = context.instance](std::function<void(AdminReply)> answer) mutable {
    auto gathered = [entries = std::move(entries), self, answer](ClusterListing others) mutable {
      for (auto& entry : others.connections) entries.push_back(std::move(entry));
      std::vector<std::string> answered{self};
      answered.insert(answered.end(), others.answered.begin(), others.answered.end());
      nlohmann::json doc{{"connections", std::move(entries)},
                         {"instances", {{"answered", answered}, {"missing", others.missing}}}};
      answer(AdminReply{200, doc.dump() + "\n", {}});
    };
    if (!cluster->gather_sessions(std::move(gathered))) answer(control_channel_down());
  };
  return reply;
}

AdminReply close_one(std::string_view id_text, std::string_view query,
                     const AdminContext& context) {
  const auto id = parse_connection_id(id_text, context.instance);
  if (!id) {
    return error(400, "bad_request",
                 "the connection id is \"42@instance\", or a number for this instance");
  }
  std::uint16_t code = 1000;
  if (auto c = query_value(query, "code")) {
    const auto n = parse_id(*c);
    // Codes an application may send (RFC 6455 7.4): 1000, 1001, 1008, 1011, 1012, 1013 and
    // 3000-4999.
    if (!n || !(*n == 1000 || *n == 1001 || *n == 1008 || *n == 1011 || *n == 1012 || *n == 1013 ||
                (*n >= 3000 && *n <= 4999))) {
      return error(400, "bad_request",
                   "'code' must be 1000, 1001, 1008, 1011, 1012, 1013 or 3000-4999");
    }
    code = static_cast<std::uint16_t>(*n);
  }
  std::string reason = query_value(query, "reason").value_or("closed by the admin API");
  if (reason.size() > 123) return error(400, "bad_request", "'reason' is over 123 bytes");
  if (!is_valid_utf8(reason)) return error(400, "bad_request", "'reason' is not UTF-8");
  const std::string name = format_connection_id(id->number, id->instance);
  if (id->instance != context.instance) {
    if (context.cluster == nullptr) {
      return error(404, "not_found",
                   "connection " + name + " is another instance's, and this one has no [cluster]");
    }
    return forwarded_reply(context.cluster->close_on(id->instance, id->number, code, reason),
                           id->instance, name);
  }
  if (!context.sessions.close_session(id->number, code, reason)) {
    return error(404, "not_found", "no open connection " + name);
  }
  return AdminReply{200, nlohmann::json{{"closed", name}}.dump() + "\n", {}};
}

}  // namespace

std::optional<GlobalConnectionId> parse_connection_id(std::string_view text,
                                                      std::string_view this_instance) {
  const auto at = text.find('@');
  const auto number = parse_id(text.substr(0, at));
  if (!number || *number == 0) return std::nullopt;
  if (at == std::string_view::npos) return GlobalConnectionId{*number, std::string(this_instance)};
  const std::string_view instance = text.substr(at + 1);
  if (!is_valid_instance_id(instance)) return std::nullopt;
  return GlobalConnectionId{*number, std::string(instance)};
}

std::string format_connection_id(ConnectionId number, std::string_view instance) {
  return std::to_string(number) + "@" + std::string(instance);
}

nlohmann::json session_entries(const std::vector<SessionInfo>& sessions,
                               std::string_view instance) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : sessions) {
    list.push_back({{"id", format_connection_id(s.id, instance)},
                    {"instance", instance},
                    {"user", s.user},
                    {"route", s.route},
                    {"remote_address", s.remote_address},
                    {"since", s.since_unix_seconds},
                    {"messages_in", s.messages_in},
                    {"messages_out", s.messages_out},
                    {"bytes_in", s.bytes_in},
                    {"bytes_out", s.bytes_out}});
  }
  return list;
}

void apply_forwarded_push(const nlohmann::json& request, SessionDirectory& sessions,
                          const std::string& instance) {
  auto read = read_push(request, instance);
  const auto* push = std::get_if<PushRequest>(&read);
  // (A push by id names its owner: one for another instance is not this one's to deliver.)
  if (push == nullptr ||
      (push->target.kind == PushTarget::Kind::kConnection && push->instance != instance)) {
    return;
  }
  sessions.push(push->target, push->frame);
}

AdminReply handle_admin_api(std::string_view method, std::string_view target, std::string_view body,
                            const AdminContext& context) {
  const auto q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? "" : target.substr(q + 1);
  if (path == "/api/v1/push") {
    if (method != "POST") return error(405, "method_not_allowed", "use POST");
    return push(body, context);
  }
  if (path == "/api/v1/connections") {
    if (method != "GET") return error(405, "method_not_allowed", "use GET");
    return list(query, context);
  }
  constexpr std::string_view kOne = "/api/v1/connections/";
  if (path.starts_with(kOne)) {
    if (method != "DELETE") return error(405, "method_not_allowed", "use DELETE");
    return close_one(path.substr(kOne.size()), query, context);
  }
  if (path == "/api/v1/drain" && context.drain) {
    if (method != "POST") return error(405, "method_not_allowed", "use POST");
    context.drain();
    return AdminReply{202, "{\"draining\":true}\n", {}};
  }
  return error(404, "not_found", "no such admin endpoint");
}

}  // namespace wsbridge
