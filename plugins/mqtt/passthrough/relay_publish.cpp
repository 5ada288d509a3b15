// The relay's policy on the browser's PUBLISH (the ACL, publish_rate) and the acknowledgements
// of its publishes: a refused QoS 1 or 2 publish is answered here, but not before the broker
// answered the publishes the browser sent ahead of it. MQTT orders a client's PUBACKs and PUBRECs
// as its publishes [MQTT-4.6.0-2, MQTT-4.6.0-3], and a client may rely on it (an ack for id 2
// before the one for id 1 reads as a broker that lost the first).
#include <algorithm>

#include "acl.hpp"
#include "passthrough/passthrough_metrics.hpp"
#include "passthrough/relay.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge::mqtt {

bool Relay::within_publish_rate() {
  if (route_->publish_rate <= 0) return true;
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - publish_refilled_at_).count();
  publish_refilled_at_ = now;
  publish_tokens_ =
      std::min(route_->publish_burst, publish_tokens_ + elapsed * route_->publish_rate);
  if (publish_tokens_ < 1) return false;
  publish_tokens_ -= 1;
  return true;
}

void Relay::on_client_publish(std::string_view packet) {
  std::string error;
  auto publish = wire::parse_publish(packet, version_, error);
  if (!publish) {
    disconnect(wire::reason::kMalformedPacket, CloseCode::kProtocolError,
               "malformed PUBLISH: " + error);
    return;
  }
  if (version_ == wire::kMqtt5 &&
      (publish->topic.empty() ||
       wire::find_property(publish->properties, wire::property::kTopicAlias))) {
    disconnect(wire::reason::kTopicAliasInvalid, CloseCode::kPolicyViolation,
               "topic aliases are disabled on this route: name the topic in every PUBLISH");
    return;
  }
  if (!within_publish_rate()) {
    disconnect(wire::reason::kMessageRateTooHigh, CloseCode::kPolicyViolation,
               "too many PUBLISH packets: over this route's publish_rate");
    return;
  }
  if (publish->qos > 0 && owed_acks_.size() >= kMaxOwedAcks) {
    // More unacknowledged publishes than packet ids: the client reuses ids still in flight.
    disconnect(wire::reason::kProtocolError, CloseCode::kProtocolError,
               "over 65535 QoS 1 and 2 publishes awaiting acknowledgement: packet ids reused");
    return;
  }
  if (allowed_by(route_publish_, credential_publish_, publish_allowed, publish->topic)) {
    if (publish->qos > 0) owed_acks_.push_back({publish->packet_id, true, {}});
    to_broker(packet);
    return;
  }
  metrics_.denied_publish.inc();
  const std::string why = "publish to \"" + std::string(publish->topic) + "\" is not allowed";
  if (version_ != wire::kMqtt5 && route_->disconnect_on_denied_publish) {
    fail(CloseCode::kPolicyViolation, why);
    return;
  }
  answer_refused_publish(*publish, why);
}

void Relay::answer_refused_publish(const wire::PublishPacket& publish, const std::string& why) {
  // Never reaches the broker. MQTT 5 says why in the acknowledgement; 3.1.1 has no way to say
  // it, so the publish is acknowledged and dropped (denied_publish = "drop").
  if (publish.qos == 0) return;
  wire::AckPacket ack;
  ack.type = publish.qos == 1 ? wire::PacketType::kPuback : wire::PacketType::kPubrec;
  ack.packet_id = publish.packet_id;
  std::string answer;
  if (version_ != wire::kMqtt5) {
    if (publish.qos == 2) local_qos2_.insert(publish.packet_id);
    answer = wire::encode_ack(ack, version_);
  } else {
    ack.code = wire::reason::kNotAuthorized;
    std::string plain = wire::encode_ack(ack, version_);
    // A Reason String only when the client asked for problem information [MQTT-3.1.2-29], and
    // not for answers that wait beyond kHeldAckBytes (they are kept short then).
    const bool waits = !owed_acks_.empty();
    if (problem_information_ && (!waits || held_ack_bytes_ < kHeldAckBytes)) {
      wire::append_property(ack.properties, wire::property::kReasonString,
                            text::utf8_prefix(why, 256));
      answer = within_client_limit(wire::encode_ack(ack, version_), std::move(plain));
    } else {
      answer = within_client_limit(std::move(plain), {});
    }
  }
  if (owed_acks_.empty()) {
    to_client(answer);
    return;
  }
  held_ack_bytes_ += answer.size();
  owed_acks_.push_back({publish.packet_id, false, std::move(answer)});
}

void Relay::on_broker_publish_ack(std::string_view packet) {
  const std::string_view body = wire::packet_body(packet);
  if (body.size() >= 2) {
    const auto id = static_cast<std::uint16_t>((static_cast<unsigned char>(body[0]) << 8) |
                                               static_cast<unsigned char>(body[1]));
    const auto owed = std::find_if(owed_acks_.begin(), owed_acks_.end(), [&](const OwedAck& a) {
      return a.by_broker && a.packet_id == id;
    });
    if (owed != owed_acks_.end()) owed_acks_.erase(owed);
  }
  to_client(packet);
  // The answers refused publishes had to wait for: those no broker answer is ahead of now.
  while (!owed_acks_.empty() && !owed_acks_.front().by_broker) {
    held_ack_bytes_ -= owed_acks_.front().ack.size();
    to_client(owed_acks_.front().ack);
    owed_acks_.pop_front();
  }
}

void Relay::on_client_pubrel(std::string_view packet) {
  std::string error;
  auto pubrel = wire::parse_ack(packet, version_, error);
  if (!pubrel) {
    disconnect(wire::reason::kMalformedPacket, CloseCode::kProtocolError,
               "malformed PUBREL: " + error);
    return;
  }
  if (local_qos2_.erase(pubrel->packet_id) == 0) {
    to_broker(packet);
    return;
  }
  // The second half of a QoS 2 publish acknowledged here: completed here too.
  wire::AckPacket pubcomp;
  pubcomp.type = wire::PacketType::kPubcomp;
  pubcomp.packet_id = pubrel->packet_id;
  to_client(wire::encode_ack(pubcomp, version_));
}

}  // namespace wsbridge::mqtt
