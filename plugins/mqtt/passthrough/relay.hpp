// One browser's MQTT session carried through to the broker (mode = "passthrough"): the browser's
// packets arrive in WebSocket messages, the broker's over the relay's own TCP (or TLS) stream,
// and every packet that matters to the route's policy is inspected on the way:
//
//   CONNECT    authenticated (in-band password when the upgrade carried no credential), client
//              id forced by the route's template, the broker's service credentials put in,
//              keepalive clamped, the will checked against the publish ACL; MQTT 5: the
//              browser's Topic Alias Maximum removed (the broker names every topic it sends);
//   CONNACK    MQTT 5: Topic Alias Maximum removed (no alias can hide a topic from the ACL),
//              Server Keep Alive added when the keepalive was clamped;
//   SUBSCRIBE  each filter checked; refused ones answered in the SUBACK, never sent upstream;
//   PUBLISH    checked; a refused one never reaches the broker (MQTT 5: PUBACK/PUBREC 0x87, in
//              order behind the broker's acknowledgements of the publishes before it).
//              From the broker: checked against the subscribe ACL, which a persistent session's
//              subscriptions from an earlier connection (under a wider ACL) may exceed; a refused
//              one is acknowledged to the broker and never reaches the browser.
//
//   DISCONNECT from the broker (MQTT 5): relayed, and the session ends there (the broker's word
//              about this client, a session taken over say, not a broker failure). A broker that
//              drops a session taken over without one (mosquitto 2.0.11): SessionOwners says so.
//
// Everything else is relayed as it came. A client silent for 1.5 times its keepalive is closed
// (the broker then publishes its will). A relay lives on its connection's shard and is driven by
// the adapter's callbacks and its stream's; nothing in it blocks.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "acl.hpp"
#include "passthrough/mqtt_packets.hpp"
#include "passthrough/passthrough_config.hpp"
#include "passthrough/session_owners.hpp"
#include "subscription_set.hpp"
#include "wsbridge/plugin.hpp"
#include "wsbridge/stream_client.hpp"

namespace wsbridge::mqtt {

struct PassthroughMetrics;

// How long the broker has to answer CONNECT once wsbridge sent it (connecting itself is bounded
// by the stream's own timeout).
inline constexpr std::chrono::seconds kConnackTimeout{10};

class Relay final : public StreamHandler {
 public:
  Relay(std::shared_ptr<Connection> connection, std::shared_ptr<const PassthroughRouteConfig> route,
        StreamEndpoint& upstream, PassthroughMetrics& metrics);
  ~Relay() override;

  // Adapter callbacks, on the connection's shard.
  void from_client(const Frame& message);
  void client_drained();
  // Whether the browser's CONNECT is still awaited (its deadline is the adapter's: no broker
  // connection, whose timer the relay uses, exists before it).
  bool awaiting_connect() const { return phase_ == Phase::kAwaitConnect; }
  // The route's registry of broker client ids (before the first packet; none: takeovers are not
  // told from broker failures).
  void track_sessions(SessionOwners* owners) { session_owners_ = owners; }

  // StreamHandler: the broker side.
  void on_connected() override;
  void on_data(std::string_view bytes) override;
  void on_drained() override;
  void on_timer() override;
  void on_closed(std::string_view reason) override;

 private:
  enum class Phase : std::uint8_t { kAwaitConnect, kAwaitConnack, kRelaying, kClosed };

  // Client side (relay_client.cpp).
  void client_packet(std::string_view packet);
  void on_connect(std::string_view packet);
  void on_client_publish(std::string_view packet);
  void on_client_subscribe(std::string_view packet);
  void on_client_pubrel(std::string_view packet);
  void on_client_unsubscribe(std::string_view packet);
  bool within_publish_rate();
  // The client id a browser that sent none is given: "c" and 16 hex digits from the CSPRNG,
  // unguessable, so no other client can name it first and take its session over (empty when the
  // CSPRNG fails).
  static std::string random_client_id();
  // Publish acknowledgements (relay_publish.cpp): a refused publish's, in order behind those the
  // broker owes for earlier ones; the broker's PUBACK or PUBREC, and what waited behind it.
  void answer_refused_publish(const wire::PublishPacket& publish, const std::string& why);
  void on_broker_publish_ack(std::string_view packet);
  // Whether the route's ACL and the credential's (when it has one) allow `topic` by `check`.
  static bool allowed_by(const SharedAcl& route,
                         const std::optional<std::vector<std::string>>& credential,
                         bool (*check)(const std::vector<std::string>&, std::string_view),
                         std::string_view topic);
  // Broker side, deliveries (relay_delivery.cpp).
  void on_broker_publish(std::string_view packet);
  void on_broker_pubrel(std::string_view packet);
  // MQTT 3.1.1: a PUBLISH over max_packet_bytes (`start`: its first bytes) is skipped.
  void on_oversized_delivery(std::string_view start);
  // Tells the broker a delivery kept from the browser arrived (code5: an MQTT 5 PUBACK's).
  void acknowledge_dropped(std::uint8_t qos, std::uint16_t packet_id, std::uint8_t code5);
  // Broker side (relay.cpp).
  void broker_packet(std::string_view packet);
  void on_connack(std::string_view packet);
  void on_suback(std::string_view packet);
  // MQTT 5: the broker ends the session (relayed, nothing follows it).
  void on_broker_disconnect(std::string_view packet);

  // Queues bytes for the browser (sent as one message per turn, see flush_to_client).
  void to_client(std::string_view packet) { client_out_ += packet; }
  void flush_to_client();
  // Tells the connection whether to read from the browser, when that changed.
  void update_client_reading();
  void to_broker(std::string_view packet);
  void flush_to_broker();
  // Ends the session: an MQTT packet for the browser first when one applies (a CONNACK refusal,
  // an MQTT 5 DISCONNECT), then the WebSocket close.
  void fail(CloseCode code, const std::string& reason, std::string_view last_packet = {});
  // This connection's CONNECT came to nothing: a connection it marked taken over is not.
  void give_back_session();
  // MQTT 5 DISCONNECT with `code` before closing; 3.1.1 just closes.
  void disconnect(std::uint8_t code, CloseCode close, const std::string& reason);
  std::string connack_refusal(std::uint8_t code5, std::uint8_t code311,
                              const std::string& reason) const;
  // A packet of wsbridge's own for an MQTT 5 browser, within the Maximum Packet Size its CONNECT
  // named [MQTT-3.1.2-24]: `packet`, else `plain` (the same without its Reason String), else
  // nothing.
  std::string within_client_limit(std::string packet, std::string plain) const;
  // `block` without the properties the client may be spared (Reason String, User Properties):
  // what goes first when a packet is over its Maximum Packet Size [MQTT-3.1.2-25], and what it
  // never gets from wsbridge after Request Problem Information 0 [MQTT-3.1.2-29].
  static std::string without_problem_information(std::string_view block);

  const std::shared_ptr<Connection> connection_;
  const std::shared_ptr<const PassthroughRouteConfig> route_;
  StreamEndpoint& endpoint_;
  PassthroughMetrics& metrics_;
  std::unique_ptr<Stream> upstream_;
  Phase phase_ = Phase::kAwaitConnect;
  std::uint8_t version_ = wire::kMqtt311;
  std::uint32_t client_max_packet_ = 0xFFFFFFFF;  // MQTT 5 CONNECT's Maximum Packet Size
  bool problem_information_ = true;               // MQTT 5 CONNECT's Request Problem Information

  wire::PacketReader client_reader_;
  std::size_t client_bytes_held_ = 0;  // what client_reader_ holds, as told to hold_inbound()
  wire::PacketReader broker_reader_;
  std::string client_out_;  // packets for the browser, gathered during one turn (or until CONNACK)
  // What may wait for the CONNACK (flush_to_client); past it the browser is closed (from_client).
  static constexpr std::size_t kHeldBeforeConnack = std::size_t{64} * 1024;
  std::string broker_out_;  // packets for the broker, gathered during one turn

  // The identity the policy applies to (the upgrade's, or the one CONNECT's password proved).
  // An MQTT 5 browser that left its client id empty is told the one chosen for it (CONNACK's
  // Assigned Client Identifier), as a broker would.
  std::string assigned_client_id_;
  std::string broker_client_id_;  // as the broker knows it (the route's template applied)
  SessionOwners* session_owners_ = nullptr;
  SessionOwners::Claim session_claim_;  // set once another connection took broker_client_id_
  SharedAcl route_subscribe_;           // (null until CONNECT: nothing allowed)
  SharedAcl route_publish_;
  std::optional<std::vector<std::string>> credential_subscribe_;
  std::optional<std::vector<std::string>> credential_publish_;

  // SUBSCRIBEs sent to the broker and awaiting its SUBACK, by packet id: for one sent with some
  // filters taken out, the code of each filter the browser asked for (kForwarded where the
  // broker's SUBACK has it, in order; a byte each: a SUBSCRIBE may hold a million filters);
  // empty for one sent whole. A packet id in use here may not be used again before its SUBACK
  // [MQTT-2.3.1-2]: the plan would go to the wrong SUBACK.
  static constexpr std::uint8_t kForwarded = 0xFF;  // (no SUBACK code has this value)
  std::map<std::uint16_t, std::vector<std::uint8_t>> subscribes_in_flight_;
  // What this connection subscribed (UNSUBSCRIBE takes filters out; a filter the broker refused
  // stays counted until then), against the route's max_subscriptions and the rest.
  SubscriptionSet subscribed_;
  // MQTT 3.1.1 QoS 2 publishes dropped by the ACL and acknowledged here: their PUBREL is too.
  std::set<std::uint16_t> local_qos2_;
  // The same for QoS 2 deliveries from the broker the ACL kept from the browser.
  std::set<std::uint16_t> dropped_qos2_;
  // The browser's QoS 1 and 2 publishes still owed their PUBACK or PUBREC, oldest first: those
  // the broker answers, and those refused here whose answer (`ack`) waits behind the broker's for
  // publishes before it, as MQTT orders them [MQTT-4.6.0-2, MQTT-4.6.0-3]. At most one per packet
  // id in flight (65,535); an answer waiting here keeps its Reason String while they all take
  // under kHeldAckBytes.
  struct OwedAck {
    std::uint16_t packet_id = 0;
    bool by_broker = true;
    std::string ack;  // (refused here) the acknowledgement to send
  };
  std::deque<OwedAck> owed_acks_;
  std::size_t held_ack_bytes_ = 0;
  static constexpr std::size_t kMaxOwedAcks = 65535;
  static constexpr std::size_t kHeldAckBytes = std::size_t{64} * 1024;

  // Keepalive: what the broker was told, and our own PINGREQs when nothing of the browser's
  // reached the broker for half of it.
  std::chrono::seconds upstream_keepalive_{0};
  bool keepalive_clamped_ = false;  // the broker was told another keepalive than the browser's
  bool client_spoke_ = false;       // since the last keepalive tick
  unsigned quiet_ticks_ = 0;        // ticks in a row with nothing of the browser's to the broker
  // (The first tick after a packet counts it; quiet ones follow: the fourth comes between one and
  // one and a quarter keepalives after it. Five put it at up to the broker's one and a half,
  // which a busy machine missed.)
  static constexpr unsigned kQuietTicksBeforePing = 4;
  unsigned own_pings_ = 0;  // PINGRESPs owed to us, not to the browser
  // The browser's own keepalive, as it keeps it (MQTT 5: the one CONNACK gave it; 3.1.1: the
  // one it asked for; 0: none): silent for 1.5 times that (any packet counts, those the policy
  // dropped too), it is closed, without a DISCONNECT to the broker, which publishes its will
  // [MQTT-3.1.2-22]. Checked at the keepalive ticks.
  std::chrono::seconds client_keepalive_{0};
  std::chrono::steady_clock::time_point client_heard_at_{};

  double publish_tokens_ = 0;
  std::chrono::steady_clock::time_point publish_refilled_at_{};

  // Reading from the browser is paused while either holds (update_client_reading):
  bool broker_backed_up_ = false;  // the broker takes less than the browser sends
  // The browser's queue is past the route's high-water mark: what we answer its own packets
  // (refused publishes' acks, SUBACKs) would pile up at the speed it sends them.
  bool client_backed_up_ = false;
  bool client_reading_paused_ = false;  // as last told to the connection
  bool upstream_paused_ = false;        // reading from the broker paused: the browser is slow
};

}  // namespace wsbridge::mqtt
