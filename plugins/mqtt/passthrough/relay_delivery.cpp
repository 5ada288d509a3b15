// The relay's policy on what the broker delivers. SUBSCRIBE is checked on the way in, but a
// persistent session (clean session off) keeps at the broker the subscriptions an earlier
// connection made under a wider ACL: a configuration reloaded since, or another route sharing
// the client id's namespace. So every PUBLISH from the broker is checked against this
// connection's subscribe ACL too. A refused one is acknowledged to the broker, which would
// otherwise send it again (and hold its in-flight window for it), and never reaches the browser.
#include "passthrough/passthrough_metrics.hpp"
#include "passthrough/relay.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::mqtt {

void Relay::on_broker_publish(std::string_view packet) {
  std::string error;
  auto publish = wire::parse_publish(packet, version_, error);
  if (!publish) {
    metrics_.broker_unavailable.inc();
    disconnect(wire::reason::kImplementationSpecific, CloseCode::kInternalError,
               "the broker sent a malformed PUBLISH: " + error);
    return;
  }
  if (publish->topic.empty()) {
    // A Topic Alias: CONNECT told the broker the browser takes none (on_connect).
    metrics_.broker_unavailable.inc();
    disconnect(wire::reason::kImplementationSpecific, CloseCode::kInternalError,
               "the broker sent a PUBLISH without a topic name (a topic alias)");
    return;
  }
  if (allowed_by(route_subscribe_, credential_subscribe_, delivery_allowed, publish->topic)) {
    to_client(packet);
    return;
  }
  metrics_.denied_delivery.inc();
  WSB_LOG(kDebug) << "conn " << connection_->id() << " pass-through " << route_->path
                  << ": a message on \"" << publish->topic
                  << "\" from a subscription this connection may not make: dropped";
  acknowledge_dropped(publish->qos, publish->packet_id, wire::reason::kNotAuthorized);
}

void Relay::acknowledge_dropped(std::uint8_t qos, std::uint16_t packet_id, std::uint8_t code5) {
  if (qos == 0) return;
  wire::AckPacket ack;
  ack.type = qos == 1 ? wire::PacketType::kPuback : wire::PacketType::kPubrec;
  ack.packet_id = packet_id;
  if (qos == 2) {
    // Received, then completed at the broker's PUBREL. (An MQTT 5 PUBREC 0x87 would end the
    // exchange, but mosquitto 2.0.11 never gives its in-flight slot back: past its window,
    // 20 by default, nothing more at QoS 1 or 2 reached the client.)
    dropped_qos2_.insert(packet_id);
  } else if (version_ == wire::kMqtt5) {
    ack.code = code5;
  }
  to_broker(wire::encode_ack(ack, version_));
}

void Relay::on_oversized_delivery(std::string_view start) {
  // (MQTT 3.1.1 only: an MQTT 5 broker is told the route's limit in CONNECT.) Ending the session
  // would not help: a persistent one gets the message again at every reconnect, and nothing
  // behind it ever arrives. So it is skipped, and acknowledged.
  const std::string too_large =
      "the broker sent an MQTT packet over this route's max_packet_bytes (" +
      std::to_string(route_->max_packet_bytes) + ")";
  if (wire::packet_type(start) != wire::PacketType::kPublish) {
    metrics_.broker_unavailable.inc();
    disconnect(wire::reason::kImplementationSpecific, CloseCode::kInternalError, too_large);
    return;
  }
  const auto qos = static_cast<std::uint8_t>((static_cast<unsigned char>(start[0]) >> 1) & 0x03);
  const std::string_view body = wire::packet_body(start);
  const auto u16 = [&](std::size_t at) {
    return static_cast<std::uint16_t>((static_cast<unsigned char>(body[at]) << 8) |
                                      static_cast<unsigned char>(body[at + 1]));
  };
  const std::size_t topic_bytes = body.size() >= 2 ? u16(0) : 0;
  if (qos == 3 || body.size() < 2 + topic_bytes + (qos > 0 ? 2 : 0)) {
    metrics_.broker_unavailable.inc();
    disconnect(wire::reason::kImplementationSpecific, CloseCode::kInternalError,
               too_large + ", and malformed");
    return;
  }
  metrics_.oversized_delivery.inc();
  WSB_LOG(kWarn) << "conn " << connection_->id() << " pass-through " << route_->path
                 << ": a message on \"" << body.substr(2, topic_bytes)
                 << "\" is over max_packet_bytes (" << route_->max_packet_bytes << "): dropped";
  acknowledge_dropped(qos, qos > 0 ? u16(2 + topic_bytes) : 0, 0);
}

void Relay::on_broker_pubrel(std::string_view packet) {
  std::string error;
  auto pubrel = wire::parse_ack(packet, version_, error);
  if (!pubrel) {
    metrics_.broker_unavailable.inc();
    disconnect(wire::reason::kImplementationSpecific, CloseCode::kInternalError,
               "the broker sent a malformed PUBREL: " + error);
    return;
  }
  if (dropped_qos2_.erase(pubrel->packet_id) == 0) {
    to_client(packet);
    return;
  }
  // The second half of a delivery dropped here: completed here too.
  wire::AckPacket pubcomp;
  pubcomp.type = wire::PacketType::kPubcomp;
  pubcomp.packet_id = pubrel->packet_id;
  to_broker(wire::encode_ack(pubcomp, version_));
}

}  // namespace wsbridge::mqtt
