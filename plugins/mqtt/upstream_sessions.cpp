// The upstream's sessions: opening, closing, and the JSON requests their clients send.

#include "upstream_impl.hpp"

#include "topic_levels.hpp"

namespace wsbridge::mqtt {

// ---- sessions ----------------------------------------------------------------------------------

void Upstream::Impl::reply(ConnectionId id, Frame frame) {
  auto it = sessions.find(id);
  if (it != sessions.end()) it->second.connection->send(std::move(frame));
}

void Upstream::Impl::handle(SessionOpened& e) {
  const ConnectionId id = e.connection->id();
  const Identity& who = e.connection->identity();
  SessionState s;
  s.connection = std::move(e.connection);
  s.route = std::move(e.route);
  const std::string& reserved = s.route->reserved_prefix;
  s.subscribe_acl = expand_acl_shared(s.route->subscribe_for_everyone, s.route->allow_subscribe,
                                      who.user, who.claims, reserved);
  s.publish_acl = expand_acl_shared(s.route->publish_for_everyone, s.route->allow_publish, who.user,
                                    who.claims, reserved);
  if (who.acl) {
    s.credential_subscribe_acl = expand_acl(who.acl->subscribe, who.user, who.claims, reserved);
    s.credential_publish_acl = expand_acl(who.acl->publish, who.user, who.claims, reserved);
  }
  auto& session = sessions.emplace(id, std::move(s)).first->second;
  if (session.raw()) {
    for (const auto& filter : session.route->subscribe) {
      subscribe(session, id, filter, session.route->qos, std::nullopt);
    }
  } else if (!e.told_up || link != Link::kUp) {
    // Not told yet, or told "up" before a loss the worker handled ahead of this open (the loss's
    // "down" went only to the sessions the worker knew).
    session.connection->send(link == Link::kUp ? status_up : status_down);
  }
}

void Upstream::Impl::handle(SessionClosed& e) {
  auto it = sessions.find(e.id);
  if (it == sessions.end()) return;
  const std::vector<std::string> subscribed(it->second.filters.begin(), it->second.filters.end());
  for (const auto& filter : subscribed) unsubscribe(it->second, e.id, filter);
  held.erase(e.id);
  sessions.erase(it);
}

namespace {

// A PUBLISH as the broker will see it: fixed header (at most 5 bytes), the topic with its length,
// a packet id, the payload, and for MQTT 5 a few bytes of properties. A broker given more than
// its limit drops the connection, which every client of the upstream shares.
std::size_t publish_packet_bytes(const UpstreamConfig& config, std::size_t topic_bytes,
                                 std::size_t payload_bytes) {
  return 5 + 2 + topic_bytes + 2 + payload_bytes + (config.mqtt_version == 5 ? 16 : 0);
}

}  // namespace

void Upstream::Impl::handle(SessionMessage& e) {
  auto it = sessions.find(e.id);
  if (it == sessions.end()) return;
  SessionState& s = it->second;
  if (s.raw()) {
    const auto& route = *s.route;
    if (!route.publish_topic) {
      s.connection->close(CloseCode::kPolicyViolation, "this route does not accept messages");
      return;
    }
    if (publish_packet_bytes(config, route.topic_prefix.size() + route.publish_topic->size(),
                             e.frame.payload().size()) > config.max_packet_bytes) {
      s.connection->close(CloseCode::kMessageTooBig,
                          "message over the broker's max_packet_bytes (" +
                              std::to_string(config.max_packet_bytes) + ")");
      return;
    }
    submit_publish(PendingPublish{e.id, std::nullopt, route.topic_prefix + *route.publish_topic,
                                  std::string(e.frame.payload()), route.qos, route.retain,
                                  std::move(e.ticket)});
    return;
  }
  if (!e.frame.is_text()) {
    s.connection->send(
        error_frame(std::nullopt, "bad_request", "this route speaks JSON: send text frames"));
    return;
  }
  json_request(s, e.id, e.frame.payload(), e.ticket);
}

void Upstream::Impl::json_request(SessionState& s, ConnectionId id, std::string_view text,
                                  FlowTicket& ticket) {
  auto parsed = parse_request(text);
  if (auto* err = std::get_if<RequestError>(&parsed)) {
    s.connection->send(error_frame(err->id, err->code, err->message));
    return;
  }
  Request& r = std::get<Request>(parsed);
  const auto& route = *s.route;
  if (r.qos > route.max_qos) {
    s.connection->send(error_frame(r.id, "bad_request",
                                   "qos " + std::to_string(r.qos) +
                                       " is above this route's max_qos " +
                                       std::to_string(route.max_qos)));
    return;
  }
  if (route.topic_prefix.size() + r.topic.size() > kMaxTopicBytes) {
    s.connection->send(error_frame(r.id, "bad_request", "topic too long with this route's prefix"));
    return;
  }
  // Every client shares this upstream's broker connection: a topic the broker refuses may make it
  // drop that connection for everyone (mosquitto does past 200 levels), and each level of a
  // filter is a node of the trie here. So a level bound, the route's prefix included.
  // (The prefix's last level and the topic's first join into one: "t/" + "a/b" is "t/a/b".)
  const std::size_t levels =
      topic_level_count(r.topic) +
      (route.topic_prefix.empty() ? 0 : topic_level_count(route.topic_prefix) - 1);
  if (r.type != RequestType::kPing && levels > config.max_topic_levels) {
    s.connection->send(error_frame(r.id, "bad_request",
                                   "topic has more than " +
                                       std::to_string(config.max_topic_levels) +
                                       " levels (this route's prefix included)"));
    return;
  }
  switch (r.type) {
    case RequestType::kPing:
      s.connection->send(pong_frame(r.id));
      return;
    case RequestType::kSubscribe:
      if (is_shared_subscription(route.topic_prefix, r.topic)) {
        s.connection->send(error_frame(r.id, "bad_request", std::string(kNoSharedSubscriptions)));
        return;
      }
      if (!s.may_subscribe(r.topic)) {
        s.connection->send(error_frame(r.id, "forbidden",
                                       "subscribing to \"" + r.topic + "\" is not allowed here"));
        return;
      }
      if (auto refusal = s.filters.refusal(r.topic, route.subscriptions)) {
        s.connection->send(error_frame(r.id, "forbidden", *refusal));
        return;
      }
      subscribe(s, id, r.topic, r.qos, std::move(r.id));
      return;
    case RequestType::kUnsubscribe:
      unsubscribe(s, id, r.topic);
      if (r.id) s.connection->send(ack_frame(*r.id));
      return;
    case RequestType::kPublish:
      if (!s.may_publish(r.topic)) {
        s.connection->send(error_frame(r.id, "forbidden",
                                       "publishing to \"" + r.topic + "\" is not allowed here"));
        return;
      }
      if (const std::size_t packet = publish_packet_bytes(
              config, route.topic_prefix.size() + r.topic.size(), r.payload.size());
          packet > config.max_packet_bytes) {
        s.connection->send(error_frame(
            r.id, "bad_request",
            "the publish is " + std::to_string(packet) + " bytes at the broker, over its " +
                std::to_string(config.max_packet_bytes) + " (the upstream's max_packet_bytes)"));
        return;
      }
      submit_publish(PendingPublish{id, std::move(r.id), route.topic_prefix + r.topic,
                                    std::move(r.payload), r.qos, r.retain, std::move(ticket)});
      return;
  }
}

}  // namespace wsbridge::mqtt
