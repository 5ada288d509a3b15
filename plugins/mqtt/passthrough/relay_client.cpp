// The relay's browser side: CONNECT (identity, client id, credentials, keepalive, will), and the
// policy on SUBSCRIBE and UNSUBSCRIBE (PUBLISH: relay_publish.cpp). Packets the policy has no say
// in go to the broker as they came.
#include <openssl/rand.h>

#include <algorithm>

#include "acl.hpp"
#include "passthrough/passthrough_metrics.hpp"
#include "passthrough/relay.hpp"
#include "topic.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::mqtt {

namespace {
constexpr std::uint8_t kAuthenticationMethod = 0x15;  // MQTT 5 enhanced authentication
constexpr std::uint8_t kBadAuthenticationMethod = 0x8C;
}  // namespace

bool Relay::allowed_by(const SharedAcl& route,
                       const std::optional<std::vector<std::string>>& credential,
                       bool (*check)(const std::vector<std::string>&, std::string_view),
                       std::string_view topic) {
  return route && check(*route, topic) && (!credential || check(*credential, topic));
}

void Relay::client_packet(std::string_view packet) {
  // (The keepalive: any packet counts, those the policy keeps from the broker too.)
  client_heard_at_ = std::chrono::steady_clock::now();
  const auto type = wire::packet_type(packet);
  if (phase_ == Phase::kAwaitConnect) {
    if (type != wire::PacketType::kConnect) {
      fail(CloseCode::kProtocolError, "the first MQTT packet must be CONNECT");
      return;
    }
    on_connect(packet);
    return;
  }
  // Packets relayed unparsed (acks, pings) still get their fixed header checked: the broker
  // would drop the browser for bad flags, and the reason is clearer coming from here.
  if (auto problem = wire::fixed_header_problem(packet, version_)) {
    disconnect(wire::reason::kMalformedPacket, CloseCode::kProtocolError,
               "malformed packet: " + *problem);
    return;
  }
  std::string error;
  switch (type) {
    case wire::PacketType::kPublish:
      on_client_publish(packet);
      return;
    case wire::PacketType::kSubscribe:
      on_client_subscribe(packet);
      return;
    case wire::PacketType::kPubrel:
      on_client_pubrel(packet);
      return;
    case wire::PacketType::kUnsubscribe:
      on_client_unsubscribe(packet);
      return;
    case wire::PacketType::kDisconnect:
      // The browser leaves cleanly: the broker hears it (no will), then both sides close.
      to_broker(packet);
      flush_to_broker();
      phase_ = Phase::kClosed;
      if (upstream_) upstream_->close();
      connection_->close(CloseCode::kNormal, "MQTT DISCONNECT");
      return;
    case wire::PacketType::kAuth:
      // (The CONNECT had no Authentication Method, or was refused: a Protocol Error
      // [MQTT-4.12.0-1].)
      disconnect(wire::reason::kProtocolError, CloseCode::kPolicyViolation,
                 "MQTT 5 enhanced authentication (AUTH) is not relayed");
      return;
    case wire::PacketType::kConnect:
      disconnect(wire::reason::kProtocolError, CloseCode::kProtocolError, "a second CONNECT");
      return;
    case wire::PacketType::kConnack:
    case wire::PacketType::kSuback:
    case wire::PacketType::kUnsuback:
    case wire::PacketType::kPingresp:
      disconnect(wire::reason::kProtocolError, CloseCode::kProtocolError,
                 "a client sent a packet only a server sends (type " +
                     std::to_string(static_cast<int>(type)) + ")");
      return;
    case wire::PacketType::kPuback:
    case wire::PacketType::kPubrec:
    case wire::PacketType::kPubcomp:
      // Checked here too: the broker would drop the browser for a malformed one, and that read
      // as the broker failing (1001, and counted in its failures).
      if (!wire::parse_ack(packet, version_, error)) {
        disconnect(wire::reason::kMalformedPacket, CloseCode::kProtocolError,
                   "malformed acknowledgement: " + error);
        return;
      }
      break;
    default:  // PINGREQ
      break;
  }
  to_broker(packet);
}

void Relay::on_connect(std::string_view packet) {
  std::string error;
  auto connect = wire::parse_connect(packet, error);
  if (!connect) {
    metrics_.refused_connect.inc();
    std::string connack;
    bool supported = false;
    const auto level = wire::connect_level(packet, supported);
    if (level && !supported) {
      // (In 3.1.1's form, which every level's client reads: a 5 client would not be here.)
      wire::ConnackPacket refusal;
      refusal.code = wire::connack311::kUnacceptableProtocol;
      connack = wire::encode_connack(refusal, wire::kMqtt311);
    } else if (level == wire::kMqtt5) {
      // An MQTT 5 client is told why (a property twice, a value out of range...).
      version_ = wire::kMqtt5;
      connack = connack_refusal(wire::reason::kMalformedPacket, 0, "malformed CONNECT: " + error);
    }
    fail(CloseCode::kProtocolError, "malformed CONNECT: " + error, connack);
    return;
  }
  version_ = connect->version;
  if (version_ == wire::kMqtt5) {
    // A zero for either is a Protocol Error [MQTT 5 3.1.2.11.3, 3.1.2.11.4]: refused here, not
    // passed on to make the broker close, which read as the broker failing.
    for (const std::uint8_t id :
         {wire::property::kMaximumPacketSize, wire::property::kReceiveMaximum}) {
      if (auto value = wire::find_property(connect->properties, id); value && value->number == 0) {
        metrics_.refused_connect.inc();
        const std::string why = id == wire::property::kReceiveMaximum
                                    ? "CONNECT with a Receive Maximum of 0"
                                    : "CONNECT with a Maximum Packet Size of 0";
        fail(CloseCode::kProtocolError, why, connack_refusal(wire::reason::kProtocolError, 0, why));
        return;
      }
    }
    if (auto own = wire::find_property(connect->properties, wire::property::kMaximumPacketSize)) {
      client_max_packet_ = own->number;
    }
    if (auto asked =
            wire::find_property(connect->properties, wire::property::kRequestProblemInformation)) {
      problem_information_ = asked->number != 0;
    }
  }
  auto refuse = [&](std::uint8_t code5, std::uint8_t code311, const std::string& why) {
    metrics_.refused_connect.inc();
    WSB_LOG(kInfo) << "conn " << connection_->id() << " MQTT CONNECT refused: " << why;
    fail(CloseCode::kPolicyViolation, why, connack_refusal(code5, code311, why));
  };

  // Who this is: the upgrade's identity, or the credential in CONNECT's password.
  const Identity& upgrade = connection_->identity();
  std::string user = upgrade.user;
  nlohmann::json claims = upgrade.claims;
  std::optional<TopicAcl> acl = upgrade.acl;
  if (upgrade.credential_pending) {
    if (!connect->password || connect->password->empty()) {
      refuse(wire::reason::kBadUserNameOrPassword, wire::connack311::kBadUserNameOrPassword,
             "missing credentials: send a token or API key as the CONNECT password");
      return;
    }
    CredentialCheck check = connection_->authenticate(*connect->password);
    if (!check.ok) {
      refuse(wire::reason::kBadUserNameOrPassword, wire::connack311::kBadUserNameOrPassword,
             check.reason);
      return;
    }
    user = std::move(check.user);
    claims = std::move(check.claims);
    acl = std::move(check.acl);
  }
  const std::string& reserved = route_->reserved_prefix;
  route_subscribe_ = expand_acl_shared(route_->subscribe_for_everyone, route_->allow_subscribe,
                                       user, claims, reserved);
  route_publish_ = expand_acl_shared(route_->publish_for_everyone, route_->allow_publish, user,
                                     claims, reserved);
  if (acl) {
    credential_subscribe_ = expand_acl(acl->subscribe, user, claims, reserved);
    credential_publish_ = expand_acl(acl->publish, user, claims, reserved);
  }
  if (!is_valid_mqtt_string(user)) {
    // (A certificate's CN with a C1 control, say: expand_acl drops the patterns it would fill,
    // rather than hand the broker a filter it drops the client for.)
    WSB_LOG(kInfo) << "conn " << connection_->id()
                   << " MQTT: the user name holds characters MQTT strings may not (control "
                      "characters, noncharacters): ACL patterns with {user} match nothing";
  }
  if (connect->will &&
      !allowed_by(route_publish_, credential_publish_, publish_allowed, connect->will->topic)) {
    metrics_.denied_publish.inc();
    refuse(wire::reason::kNotAuthorized, wire::connack311::kNotAuthorized,
           "will topic \"" + connect->will->topic + "\" is not allowed on this route");
    return;
  }
  if (version_ == wire::kMqtt5 && wire::find_property(connect->properties, kAuthenticationMethod)) {
    refuse(kBadAuthenticationMethod, wire::connack311::kNotAuthorized,
           "MQTT 5 enhanced authentication is not relayed");
    return;
  }

  if (connect->client_id.empty()) {
    // A session nobody can name again would only pile up at the broker [MQTT-3.1.3-8].
    if (version_ != wire::kMqtt5 && !connect->clean_start) {
      refuse(wire::reason::kClientIdNotValid, wire::connack311::kIdentifierRejected,
             "an empty client id needs a clean session");
      return;
    }
    // (Unique across the instances too: the broker would take one client's session for the
    // other's. Not the connection id: another client could predict it and take it first.)
    assigned_client_id_ = random_client_id();
    if (assigned_client_id_.empty()) {
      refuse(wire::reason::kServerUnavailable, wire::connack311::kServerUnavailable,
             "no random client id could be drawn");
      return;
    }
  }
  connect->client_id = expand_client_id(
      route_->client_id, user, upgrade.credential_pending || !upgrade.auth_method.empty(),
      connect->client_id.empty() ? assigned_client_id_ : connect->client_id,
      global_connection_id(connection_->id()));
  if (connect->client_id.size() > kMaxTopicBytes) {
    refuse(wire::reason::kClientIdNotValid, wire::connack311::kIdentifierRejected,
           "the client id is too long");
    return;
  }
  // The broker knows wsbridge, not the browser's own user name and password.
  connect->username = route_->service_username;
  connect->password = route_->service_username ? route_->service_password : std::nullopt;

  const auto asked = std::chrono::seconds(connect->keepalive);
  const auto clamped = asked.count() == 0
                           ? route_->keepalive_max
                           : std::clamp(asked, route_->keepalive_min, route_->keepalive_max);
  connect->keepalive = static_cast<std::uint16_t>(clamped.count());
  upstream_keepalive_ = clamped;
  // An MQTT 5 browser is told the keepalive the broker was given (CONNACK); for one that pings
  // less often than it, and for any whose packets do not reach the broker, the relay pings.
  keepalive_clamped_ = clamped != asked;
  // The keepalive the browser keeps: an MQTT 5 one follows Server Keep Alive [MQTT-3.2.2-22];
  // a 3.1.1 one keeps its own (0: none; the relay pings the broker for it).
  client_keepalive_ = version_ == wire::kMqtt5 ? clamped : asked;

  if (version_ == wire::kMqtt5) {
    // The broker never sends the browser more than this route accepts.
    std::uint32_t limit =
        static_cast<std::uint32_t>(std::min<std::size_t>(route_->max_packet_bytes, 0xFFFFFFFFu));
    if (auto own = wire::find_property(connect->properties, wire::property::kMaximumPacketSize)) {
      limit = std::min(limit, own->number);
    }
    connect->properties =
        wire::without_property(connect->properties, wire::property::kMaximumPacketSize);
    wire::append_property(connect->properties, wire::property::kMaximumPacketSize, limit);
    // Every PUBLISH the broker sends names its topic, for the ACL to see (on_broker_publish).
    connect->properties =
        wire::without_property(connect->properties, wire::property::kTopicAliasMaximum);
  }
  publish_tokens_ = route_->publish_burst;
  publish_refilled_at_ = std::chrono::steady_clock::now();

  if (version_ != wire::kMqtt5) {
    // (The fixed header, the topic's length and the longest topic, the packet id.)
    constexpr std::size_t kPublishStart = 5 + 2 + 65535 + 2;
    broker_reader_.skip_oversized(kPublishStart);
  }
  broker_client_id_ = connect->client_id;
  if (session_owners_) session_claim_ = session_owners_->claim(broker_client_id_);
  upstream_ = endpoint_.connect(*this);
  upstream_->set_timer(kConnackTimeout);  // (a broker that takes the connection and stalls)
  metrics_.connections.add(1);
  phase_ = Phase::kAwaitConnack;
  to_broker(wire::encode_connect(*connect));
}

void Relay::on_client_subscribe(std::string_view packet) {
  std::string error;
  auto subscribe = wire::read_subscribe(packet, version_, error);
  if (!subscribe) {
    disconnect(wire::reason::kMalformedPacket, CloseCode::kProtocolError,
               "malformed SUBSCRIBE: " + error);
    return;
  }
  if (subscribes_in_flight_.contains(subscribe->packet_id)) {
    disconnect(wire::reason::kProtocolError, CloseCode::kProtocolError,
               "SUBSCRIBE with packet id " + std::to_string(subscribe->packet_id) +
                   ", which an earlier SUBSCRIBE awaiting its SUBACK has");
    return;
  }
  const bool v5 = version_ == wire::kMqtt5;
  // Walked in place, a byte of plan per filter and the broker's entries encoded as they are
  // decided: no copy of each filter (a 4 MiB SUBSCRIBE may hold a million).
  std::vector<std::uint8_t> plan;
  std::string forward;
  std::size_t forwarded = 0;
  std::string_view filter;
  std::uint8_t options = 0;
  for (auto entries = subscribe->filters; entries.next(filter, options);) {
    if (topic_filter_problem(filter)) {
      plan.push_back(v5 ? wire::reason::kTopicFilterInvalid : 0x80);
    } else if (!allowed_by(route_subscribe_, credential_subscribe_, subscribe_allowed, filter)) {
      // Wider than allowed, or $SYS/ and $share/ without a pattern that names them.
      metrics_.denied_subscribe.inc();
      plan.push_back(v5 ? wire::reason::kNotAuthorized : 0x80);
    } else if (auto refusal = subscribed_.refusal(filter, route_->subscriptions)) {
      metrics_.subscription_quota.inc();
      WSB_LOG(kDebug) << "pass-through " << route_->path << ": filter refused, " << *refusal;
      plan.push_back(v5 ? wire::reason::kQuotaExceeded : 0x80);
    } else {
      subscribed_.insert(filter);
      plan.push_back(kForwarded);
      wire::append_subscribe_entry(forward, filter, options);
      ++forwarded;
    }
  }
  if (forwarded == plan.size()) {
    subscribes_in_flight_.emplace(subscribe->packet_id, std::vector<std::uint8_t>{});
    to_broker(packet);
    return;
  }
  if (forwarded == 0) {
    // Nothing for the broker: answered here.
    wire::AckListPacket suback;
    suback.packet_id = subscribe->packet_id;
    suback.codes = std::move(plan);
    to_client(within_client_limit(wire::encode_suback(suback, version_), {}));
    return;
  }
  subscribes_in_flight_.emplace(subscribe->packet_id, std::move(plan));
  to_broker(wire::encode_subscribe(subscribe->packet_id, subscribe->properties, forward, version_));
}

void Relay::on_client_unsubscribe(std::string_view packet) {
  std::string error;
  auto unsubscribe = wire::read_unsubscribe(packet, version_, error);
  if (!unsubscribe) {
    disconnect(wire::reason::kMalformedPacket, CloseCode::kProtocolError,
               "malformed UNSUBSCRIBE: " + error);
    return;
  }
  // Checked as SUBSCRIBE's are: the broker drops a client for an invalid filter here (UNSUBACK
  // cannot refuse one in 3.1.1), which read as the broker failing.
  std::string_view filter;
  std::uint8_t options = 0;
  for (auto filters = unsubscribe->filters; filters.next(filter, options);) {
    if (auto problem = topic_filter_problem(filter)) {
      disconnect(wire::reason::kMalformedPacket, CloseCode::kProtocolError,
                 "malformed UNSUBSCRIBE: topic filter " + *problem);
      return;
    }
  }
  for (auto filters = unsubscribe->filters; filters.next(filter, options);) {
    subscribed_.erase(filter);
  }
  to_broker(packet);
}

std::string Relay::random_client_id() {
  unsigned char random[8];
  if (RAND_bytes(random, sizeof random) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "c";
  for (const unsigned char b : random) {
    id += kHex[b >> 4];
    id += kHex[b & 15];
  }
  return id;
}

}  // namespace wsbridge::mqtt
