// The relay's broker side: what the broker's packets become for the browser. CONNACK and SUBACK
// are rewritten (within the browser's Maximum Packet Size), acknowledgements of its publishes
// keep their order with the relay's own (relay_publish.cpp), and a DISCONNECT ends the session.
// Deliveries: relay_delivery.cpp.
#include "passthrough/passthrough_metrics.hpp"
#include "passthrough/relay.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::mqtt {

namespace {

// The WebSocket close that goes with a broker's MQTT 5 DISCONNECT: the broker's decision about
// this client (its session taken over, its packet refused), never counted as a broker failure.
CloseCode close_for_broker_disconnect(std::uint8_t code) {
  switch (code) {
    case 0x00:                             // normal
    case 0x04:                             // (a client's only)
    case wire::reason::kSessionTakenOver:  // another connection with this client id: another
                                           // connection with this client id (a second tab)
    case 0x98:                             // administrative action
      return CloseCode::kNormal;
    case 0x87:  // not authorized
    case 0x96:  // message rate too high
    case 0x97:  // quota exceeded
      return CloseCode::kPolicyViolation;
    case 0x89:  // server busy
    case 0x9F:  // connection rate exceeded
      return CloseCode::kTryAgainLater;
    case 0x95:  // packet too large
      return CloseCode::kMessageTooBig;
    case 0x81:  // malformed packet
    case 0x82:  // protocol error
    case 0x8F:  // topic filter invalid
    case 0x90:  // topic name invalid
    case 0x93:  // receive maximum exceeded
    case 0x94:  // topic alias invalid
    case 0x99:  // payload format invalid
    case 0x9A:  // retain not supported
    case 0x9B:  // QoS not supported
    case 0x9E:  // shared subscriptions not supported
    case 0xA1:  // subscription identifiers not supported
    case 0xA2:  // wildcard subscriptions not supported
      return CloseCode::kProtocolError;
    default:  // server shutting down, keep alive timeout, use another server, ...
      return CloseCode::kGoingAway;
  }
}

}  // namespace

void Relay::broker_packet(std::string_view packet) {
  metrics_.packets_from_broker.inc();
  const auto type = wire::packet_type(packet);
  if (phase_ == Phase::kAwaitConnack) {
    if (type != wire::PacketType::kConnack) {
      fail(CloseCode::kInternalError, "the MQTT broker did not answer CONNECT with CONNACK");
      return;
    }
    on_connack(packet);
    return;
  }
  switch (type) {
    case wire::PacketType::kPublish:
      on_broker_publish(packet);
      return;
    case wire::PacketType::kPubrel:
      on_broker_pubrel(packet);
      return;
    case wire::PacketType::kSuback:
      on_suback(packet);
      return;
    case wire::PacketType::kPuback:
    case wire::PacketType::kPubrec:
      on_broker_publish_ack(packet);
      return;
    case wire::PacketType::kDisconnect:
      on_broker_disconnect(packet);
      return;
    case wire::PacketType::kPingresp:
      if (own_pings_ > 0) {
        --own_pings_;  // the answer to our own keepalive ping
        return;
      }
      break;
    default:
      break;
  }
  to_client(packet);
}

void Relay::on_connack(std::string_view packet) {
  std::string error;
  auto connack = wire::parse_connack(packet, version_, error);
  if (!connack) {
    give_back_session();
    fail(CloseCode::kInternalError, "the MQTT broker sent a malformed CONNACK: " + error);
    return;
  }
  if (connack->code != 0) {
    give_back_session();
    const std::string why =
        "the MQTT broker refused the connection (code " + std::to_string(connack->code) + ")";
    WSB_LOG(kWarn) << "conn " << connection_->id() << " " << why;
    fail(CloseCode::kPolicyViolation, why, packet);
    return;
  }
  // The broker took this connection's client id: a connection that had it is taken over.
  if (session_claim_) session_owners_->confirm(broker_client_id_, session_claim_);
  if (version_ == wire::kMqtt5) {
    // No topic aliases from the browser: a PUBLISH must name its topic for the ACL to see it.
    connack->properties =
        wire::without_property(connack->properties, wire::property::kTopicAliasMaximum);
    if (auto server = wire::find_property(connack->properties, wire::property::kServerKeepAlive)) {
      upstream_keepalive_ = std::chrono::seconds(server->number);
      client_keepalive_ = upstream_keepalive_;  // (what the browser now keeps)
    } else if (keepalive_clamped_) {
      // The keepalive was clamped, either way: an MQTT 5 client follows the server's, which it
      // must be told when it is not its own [MQTT-3.2.2-22] (the broker times it out, and sends
      // its will, by that one).
      wire::append_property(connack->properties, wire::property::kServerKeepAlive,
                            static_cast<std::uint32_t>(upstream_keepalive_.count()));
    }
    if (!assigned_client_id_.empty() &&
        !wire::find_property(connack->properties, wire::property::kAssignedClientId)) {
      wire::append_property(connack->properties, wire::property::kAssignedClientId,
                            std::string_view(assigned_client_id_));
    }
    // Within the browser's Maximum Packet Size: without the broker's Reason String and User
    // Properties if need be [MQTT-3.2.2-19, -20]; a CONNACK that cannot fit even so (an
    // Assigned Client Identifier over a tiny limit) ends the session, said as briefly as MQTT can.
    std::string answer = wire::encode_connack(*connack, version_);
    if (answer.size() > client_max_packet_) {
      connack->properties = without_problem_information(connack->properties);
      answer = wire::encode_connack(*connack, version_);
    }
    if (answer.size() > client_max_packet_) {
      wire::ConnackPacket refusal;
      refusal.code = wire::reason::kPacketTooLarge;
      fail(CloseCode::kMessageTooBig,
           "the CONNACK is over the client's Maximum Packet Size (" +
               std::to_string(client_max_packet_) + " bytes)",
           within_client_limit(wire::encode_connack(refusal, version_), {}));
      return;
    }
    client_out_.insert(0, answer);
  } else {
    client_out_.insert(0, packet);  // (before the answers that waited for it)
  }
  phase_ = Phase::kRelaying;
  // (Replaces the CONNACK timeout, or cancels it.) The keepalives count from the CONNACK.
  client_spoke_ = false;
  client_heard_at_ = std::chrono::steady_clock::now();
  const bool ping = upstream_keepalive_.count() > 0;
  upstream_->set_timer(ping ? std::chrono::milliseconds(upstream_keepalive_) / 4
                            : std::chrono::milliseconds(0));
}

void Relay::on_suback(std::string_view packet) {
  std::string error;
  auto suback = wire::parse_suback(packet, version_, error);
  if (!suback) {
    fail(CloseCode::kInternalError, "the MQTT broker sent a malformed SUBACK: " + error);
    return;
  }
  const auto plan = subscribes_in_flight_.find(suback->packet_id);
  if (plan == subscribes_in_flight_.end() || plan->second.empty()) {
    if (plan != subscribes_in_flight_.end()) subscribes_in_flight_.erase(plan);
    to_client(packet);  // (sent whole: the broker's answer is the browser's)
    return;
  }
  // Put the codes of the filters refused here back where the browser expects them.
  std::vector<std::uint8_t> codes;
  std::size_t next = 0;
  codes.reserve(plan->second.size());
  for (const std::uint8_t code : plan->second) {
    if (code != kForwarded) {
      codes.push_back(code);
    } else {
      codes.push_back(next < suback->codes.size() ? suback->codes[next] : 0x80);
      ++next;
    }
  }
  subscribes_in_flight_.erase(plan);
  suback->codes = std::move(codes);
  // One code for each filter the browser asked for: over its Maximum Packet Size perhaps, where
  // the broker's, for fewer, was not. Then without the Reason String and User Properties, else
  // not at all [MQTT-3.1.2-25].
  std::string merged = wire::encode_suback(*suback, version_);
  if (version_ == wire::kMqtt5 && merged.size() > client_max_packet_) {
    suback->properties = without_problem_information(suback->properties);
    merged = within_client_limit(wire::encode_suback(*suback, version_), {});
  }
  to_client(merged);
}

void Relay::on_broker_disconnect(std::string_view packet) {
  std::string error;
  const auto code = wire::parse_disconnect(packet, version_, error);
  if (version_ != wire::kMqtt5 || !code) {
    // (A 3.1.1 broker never sends one.)
    metrics_.broker_unavailable.inc();
    fail(CloseCode::kInternalError,
         "the broker sent a DISCONNECT" + (code ? std::string(" in MQTT 3.1.1") : ": " + error));
    return;
  }
  // The broker's word about this client, relayed as it came (its own Reason String says why):
  // the session ends here, and nothing may follow a DISCONNECT, no second one of wsbridge's.
  const std::string why =
      "the MQTT broker ended the session (DISCONNECT reason code " + std::to_string(*code) + ")";
  WSB_LOG(kInfo) << "conn " << connection_->id() << " " << why;
  fail(close_for_broker_disconnect(*code), why, within_client_limit(std::string(packet), {}));
}

}  // namespace wsbridge::mqtt
