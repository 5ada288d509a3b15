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
  if (publish->qos == 0) return;
  wire::AckPacket ack;
  ack.type = publish->qos == 1 ? wire::PacketType::kPuback : wire::PacketType::kPubrec;
  ack.packet_id = publish->packet_id;
  if (publish->qos == 2) {
    // Received, then completed at the broker's PUBREL. (An MQTT 5 PUBREC 0x87 would end the
    // exchange, but mosquitto 2.0.11 never gives its in-flight slot back: past its window,
    // 20 by default, nothing more at QoS 1 or 2 reached the client.)
    dropped_qos2_.insert(publish->packet_id);
  } else if (version_ == wire::kMqtt5) {
    ack.code = wire::reason::kNotAuthorized;
  }
  to_broker(wire::encode_ack(ack, version_));
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
