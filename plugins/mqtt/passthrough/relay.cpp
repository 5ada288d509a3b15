// The relay's life: the stream's events, keepalive pings on the browser's behalf and the browser's
// own keepalive, flow control both ways, and how a session ends. (The broker's packets:
// relay_broker.cpp.)
#include "passthrough/relay.hpp"

#include <algorithm>

#include "passthrough/passthrough_metrics.hpp"
#include "wsbridge/log.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge::mqtt {

namespace {
constexpr std::string_view kPingreq("\xC0\x00", 2);
}  // namespace

Relay::Relay(std::shared_ptr<Connection> connection,
             std::shared_ptr<const PassthroughRouteConfig> route, StreamEndpoint& upstream,
             PassthroughMetrics& metrics)
    : connection_(std::move(connection)),
      route_(std::move(route)),
      endpoint_(upstream),
      metrics_(metrics),
      client_reader_(route_->max_packet_bytes),
      broker_reader_(route_->max_packet_bytes) {}

Relay::~Relay() {
  if (upstream_) metrics_.connections.add(-1);
  if (session_claim_) session_owners_->release(broker_client_id_, session_claim_);
}

void Relay::from_client(const Frame& message) {
  if (phase_ == Phase::kClosed) return;
  if (!message.is_binary()) {
    fail(CloseCode::kProtocolError, "MQTT packets travel in binary WebSocket messages");
    return;
  }
  // (The keepalive: bytes of a packet still arriving count too. A client uploading one large
  // packet over a slow link sends no whole packet for longer than its keepalive, and is alive.)
  if (phase_ == Phase::kRelaying) client_heard_at_ = std::chrono::steady_clock::now();
  client_reader_.feed(message.payload());
  std::string_view packet;
  while (phase_ != Phase::kClosed) {
    const auto status = client_reader_.next(packet);
    if (status == wire::PacketReader::Status::kNeedMore) break;
    if (status == wire::PacketReader::Status::kError) {
      if (client_reader_.too_large()) {
        disconnect(wire::reason::kPacketTooLarge, CloseCode::kMessageTooBig,
                   "MQTT packet over this route's max_packet_bytes (" +
                       std::to_string(route_->max_packet_bytes) + ")");
      } else {
        disconnect(wire::reason::kMalformedPacket, CloseCode::kProtocolError,
                   "malformed MQTT packet: " + client_reader_.error());
      }
      break;
    }
    client_packet(packet);
    if (phase_ == Phase::kAwaitConnack && client_out_.size() > kHeldBeforeConnack) {
      // Past what is kept for a CONNACK (one message of refused packets would hold several times
      // its own size: an MQTT 5 refusal carries a reason): a client that piles up refusals
      // before its session began is not waited for.
      fail(CloseCode::kPolicyViolation,
           "over " + std::to_string(kHeldBeforeConnack / 1024) +
               " KiB of answers to refused packets before the broker's CONNACK");
    }
  }
  // A packet split over many messages is held until whole (up to max_packet_bytes): counted
  // against the server's bound on unfinished input, so many clients cannot each hold one.
  if (phase_ != Phase::kClosed && client_reader_.buffered() != client_bytes_held_) {
    if (connection_->hold_inbound(client_reader_.buffered(), InboundHold::kPartial)) {
      client_bytes_held_ = client_reader_.buffered();
    } else {
      disconnect(wire::reason::kServerBusy, CloseCode::kTryAgainLater,
                 "server busy: too many bytes of unfinished packets held");
    }
  }
  flush_to_broker();
  flush_to_client();
}

void Relay::client_drained() {
  if (upstream_paused_ && upstream_) {
    upstream_paused_ = false;
    upstream_->pause_reading(false);
  }
  client_backed_up_ = false;
  update_client_reading();
}

void Relay::on_connected() {}

void Relay::on_data(std::string_view bytes) {
  if (phase_ == Phase::kClosed) return;
  broker_reader_.feed(bytes);
  std::string_view packet;
  while (phase_ != Phase::kClosed) {
    const auto status = broker_reader_.next(packet);
    if (status == wire::PacketReader::Status::kNeedMore) break;
    if (status == wire::PacketReader::Status::kOversized) {
      on_oversized_delivery(packet);
      continue;
    }
    if (status == wire::PacketReader::Status::kError) {
      metrics_.broker_unavailable.inc();
      disconnect(wire::reason::kImplementationSpecific, CloseCode::kInternalError,
                 (broker_reader_.too_large()
                      ? "the broker sent an MQTT packet over this route's max_packet_bytes"
                      : "the broker sent a malformed MQTT packet: " + broker_reader_.error()));
      break;
    }
    broker_packet(packet);
  }
  flush_to_broker();  // (acknowledgements of deliveries the ACL dropped)
  flush_to_client();
}

void Relay::on_drained() {
  broker_backed_up_ = false;
  update_client_reading();
}

void Relay::on_timer() {
  if (phase_ == Phase::kAwaitConnack) {
    metrics_.broker_unavailable.inc();
    give_back_session();
    const std::string why = "the MQTT broker did not answer CONNECT within " +
                            std::to_string(kConnackTimeout.count()) + " s";
    WSB_LOG(kInfo) << "conn " << connection_->id() << " " << why;
    fail(CloseCode::kTryAgainLater, why,
         connack_refusal(wire::reason::kServerUnavailable, wire::connack311::kServerUnavailable,
                         "the MQTT broker is unavailable"));
    return;
  }
  if (phase_ != Phase::kRelaying || !upstream_) return;
  // (Not while we are not reading it: its PINGREQs wait unread behind what it sent, a slow
  // reader catching up on a backlog is slowed, not closed. The core may hold its reading too,
  // until a frame to it is out: then taking bytes of that frame is what it can show.)
  if (const auto heard = connection_->heard_while_held()) {
    client_heard_at_ = std::max(client_heard_at_, *heard);
  }
  if (client_keepalive_.count() > 0 && !client_reading_paused_ &&
      std::chrono::steady_clock::now() - client_heard_at_ >
          std::chrono::milliseconds(client_keepalive_) * 3 / 2) {
    // Gone quiet (its socket half dead, say, while the WebSocket still answers pings): dropped as
    // a broker drops such a client [MQTT-3.1.2-22], without a DISCONNECT to the broker, which
    // publishes the will.
    disconnect(wire::reason::kKeepAliveTimeout, CloseCode::kGoingAway,
               "nothing from the MQTT client for 1.5 times its keepalive (" +
                   std::to_string(client_keepalive_.count()) + " s)");
    return;
  }
  // Keep the broker's session alive while the browser is connected, whenever nothing of the
  // browser's reached the broker for a keepalive: a browser that pings less often than the
  // broker was told (or not at all), and one whose packets the policy kept from the broker (to
  // the browser those count as activity, to the broker they never came). Ticks are a quarter of
  // the keepalive apart: the ping goes at the fourth quiet one, between one and one and a quarter
  // keepalives after the last packet, well before the broker's 1.5 and after a browser that
  // pings at its keepalive has done so itself.
  quiet_ticks_ = client_spoke_ ? 0 : quiet_ticks_ + 1;
  client_spoke_ = false;
  if (quiet_ticks_ >= kQuietTicksBeforePing) {
    ++own_pings_;
    to_broker(kPingreq);
    flush_to_broker();
    client_spoke_ = false;
    quiet_ticks_ = 0;
  }
  upstream_->set_timer(std::chrono::milliseconds(upstream_keepalive_) / 4);
}

void Relay::on_closed(std::string_view reason) {
  if (phase_ == Phase::kClosed) return;
  if (phase_ == Phase::kRelaying && session_claim_ && session_claim_->load()) {
    // Another connection with this client id took the session over: the broker dropped this one
    // for it (mosquitto 2.0.11 without the DISCONNECT 0x8E that says so). No broker failure.
    disconnect(wire::reason::kSessionTakenOver, CloseCode::kNormal,
               "session taken over: another connection with this client id (" + broker_client_id_ +
                   ") connected");
    return;
  }
  metrics_.broker_unavailable.inc();
  const std::string why = "MQTT broker: " + std::string(reason);
  WSB_LOG(kInfo) << "conn " << connection_->id() << " " << why;
  if (phase_ == Phase::kAwaitConnack) {
    give_back_session();
    fail(CloseCode::kTryAgainLater, why,
         connack_refusal(wire::reason::kServerUnavailable, wire::connack311::kServerUnavailable,
                         "the MQTT broker is unavailable"));
    return;
  }
  // 0x88 "Server unavailable" is CONNACK's; to the browser the server it spoke to has shut down.
  disconnect(wire::reason::kServerShuttingDown, CloseCode::kGoingAway, why);
}

void Relay::flush_to_client() {
  if (client_out_.empty()) return;
  // Nothing goes to the browser before its CONNACK [MQTT-3.2.0-1]: what is answered here to
  // packets it sent behind CONNECT (a refused SUBSCRIBE, a denied PUBLISH) waits for it (up to
  // kHeldBeforeConnack, see from_client).
  if (phase_ == Phase::kAwaitConnect || phase_ == Phase::kAwaitConnack) return;
  const SendResult result = connection_->send(Frame::binary(client_out_));
  client_out_.clear();
  if (result != SendResult::kQueuedOverHighWater) return;
  // The browser reads slower than it is sent to. From the broker: let TCP slow the broker down.
  if (upstream_ && !upstream_paused_) {
    upstream_paused_ = true;
    upstream_->pause_reading(true);
  }
  // From here: the browser's own packets are not read either until its queue drained, so a
  // browser that sends without reading is slowed down by TCP, as on the echo and http routes,
  // instead of growing its queue of our answers until the queue's bound closes it (1013).
  client_backed_up_ = true;
  update_client_reading();
}

void Relay::update_client_reading() {
  const bool paused = broker_backed_up_ || client_backed_up_;
  if (paused == client_reading_paused_) return;
  client_reading_paused_ = paused;
  connection_->pause_reading(paused);
  // The keepalive starts over when we read again: the time we did not read is not its silence.
  if (!paused) client_heard_at_ = std::chrono::steady_clock::now();
}

void Relay::to_broker(std::string_view packet) {
  metrics_.packets_from_client.inc();
  // The broker heard from the browser: that keeps its session alive (a packet the policy dropped
  // here does not, so it is no reason to skip our own PINGREQ).
  client_spoke_ = true;
  broker_out_ += packet;
}

void Relay::flush_to_broker() {
  if (broker_out_.empty() || !upstream_) return;
  const bool room = upstream_->write(broker_out_);
  broker_out_.clear();
  if (!room) {
    // The broker takes less than the browser sends: stop reading from the browser until it has.
    broker_backed_up_ = true;
    update_client_reading();
  }
}

void Relay::fail(CloseCode code, const std::string& reason, std::string_view last_packet) {
  if (phase_ == Phase::kClosed) return;
  // Answers held for a CONNACK that never came: the session never began (a refusal says so).
  if (phase_ == Phase::kAwaitConnect || phase_ == Phase::kAwaitConnack) client_out_.clear();
  phase_ = Phase::kClosed;
  if (!last_packet.empty()) to_client(last_packet);
  flush_to_client();
  // What the browser sent before the packet that ended it passed every check: the broker gets it,
  // in order, as from a client it reads up to a fault (it was dropped, and with it, say, the
  // publishes within a rate's burst ahead of the one past it).
  flush_to_broker();
  connection_->close(code, reason);
  // Without a DISCONNECT: the broker publishes the browser's will, as for a dropped client.
  if (upstream_) upstream_->close();
}

void Relay::disconnect(std::uint8_t code, CloseCode close, const std::string& reason) {
  if (!wire::is_disconnect_reason(code)) code = wire::reason::kUnspecifiedError;  // (a bug here)
  if (version_ == wire::kMqtt5 && phase_ == Phase::kRelaying) {
    fail(close, reason,
         within_client_limit(wire::encode_disconnect(wire::kMqtt5, code, reason),
                             wire::encode_disconnect(wire::kMqtt5, code)));
  } else {
    fail(close, reason);
  }
}

std::string Relay::connack_refusal(std::uint8_t code5, std::uint8_t code311,
                                   const std::string& reason) const {
  wire::ConnackPacket refusal;
  if (version_ != wire::kMqtt5) {
    refusal.code = code311;
    return wire::encode_connack(refusal, version_);
  }
  refusal.code = code5;
  const std::string plain = wire::encode_connack(refusal, version_);
  wire::append_property(refusal.properties, wire::property::kReasonString,
                        text::utf8_prefix(reason, 256));
  return within_client_limit(wire::encode_connack(refusal, version_), plain);
}

std::string Relay::without_problem_information(std::string_view block) {
  return wire::without_property(wire::without_property(block, wire::property::kReasonString),
                                wire::property::kUserProperty);
}

void Relay::give_back_session() {
  if (!session_claim_) return;
  session_owners_->give_back(broker_client_id_, session_claim_);
  session_claim_.reset();
}

std::string Relay::within_client_limit(std::string packet, std::string plain) const {
  if (packet.size() <= client_max_packet_) return packet;
  if (plain.size() <= client_max_packet_) return plain;
  return {};  // (no packet that small: not sent)
}

}  // namespace wsbridge::mqtt
