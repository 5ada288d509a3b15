// The MQTT 3.1, 3.1.1 and 5.0 wire format, as the pass-through mode (mode = "passthrough") needs
// it: a streaming reader that cuts a byte stream (WebSocket frames from the browser, TCP reads
// from the broker) into whole packets, and parsers and encoders for the packets wsbridge inspects
// or rewrites. Packets it only relays (PINGREQ, acknowledgements of allowed publishes, ...) are
// never decoded beyond their fixed header.
//
// Parsers validate what MQTT requires of the packet (reserved flags, lengths, UTF-8 strings,
// property identifiers allowed in that packet) and fail with a short reason otherwise; they never
// read past the packet. Views point into the parsed packet and live as long as it does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wsbridge::mqtt::wire {

enum class PacketType : std::uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,  // MQTT 5 only
};

// Protocol levels as CONNECT carries them.
inline constexpr std::uint8_t kMqtt31 = 3;   // "MQIsdp"
inline constexpr std::uint8_t kMqtt311 = 4;  // "MQTT"
inline constexpr std::uint8_t kMqtt5 = 5;    // "MQTT"

// MQTT 5 reason codes wsbridge sends.
namespace reason {
inline constexpr std::uint8_t kSuccess = 0x00;
inline constexpr std::uint8_t kUnspecifiedError = 0x80;
inline constexpr std::uint8_t kMalformedPacket = 0x81;
inline constexpr std::uint8_t kProtocolError = 0x82;
inline constexpr std::uint8_t kImplementationSpecific = 0x83;
inline constexpr std::uint8_t kUnsupportedProtocolVersion = 0x84;
inline constexpr std::uint8_t kClientIdNotValid = 0x85;
inline constexpr std::uint8_t kBadUserNameOrPassword = 0x86;
inline constexpr std::uint8_t kNotAuthorized = 0x87;
inline constexpr std::uint8_t kServerUnavailable = 0x88;
inline constexpr std::uint8_t kServerBusy = 0x89;
inline constexpr std::uint8_t kServerShuttingDown = 0x8B;
inline constexpr std::uint8_t kKeepAliveTimeout = 0x8D;
inline constexpr std::uint8_t kSessionTakenOver = 0x8E;
inline constexpr std::uint8_t kTopicFilterInvalid = 0x8F;
inline constexpr std::uint8_t kTopicNameInvalid = 0x90;
inline constexpr std::uint8_t kPacketIdInUse = 0x91;
inline constexpr std::uint8_t kPacketIdNotFound = 0x92;
inline constexpr std::uint8_t kTopicAliasInvalid = 0x94;
inline constexpr std::uint8_t kPacketTooLarge = 0x95;
inline constexpr std::uint8_t kMessageRateTooHigh = 0x96;
inline constexpr std::uint8_t kQuotaExceeded = 0x97;
inline constexpr std::uint8_t kAdministrativeAction = 0x98;
inline constexpr std::uint8_t kSharedSubscriptionsNotSupported = 0x9E;
inline constexpr std::uint8_t kWildcardSubscriptionsNotSupported = 0xA2;
}  // namespace reason

// MQTT 3.1.1 CONNACK return codes.
namespace connack311 {
inline constexpr std::uint8_t kAccepted = 0x00;
inline constexpr std::uint8_t kUnacceptableProtocol = 0x01;
inline constexpr std::uint8_t kIdentifierRejected = 0x02;
inline constexpr std::uint8_t kServerUnavailable = 0x03;
inline constexpr std::uint8_t kBadUserNameOrPassword = 0x04;
inline constexpr std::uint8_t kNotAuthorized = 0x05;
}  // namespace connack311

// MQTT 5 property identifiers wsbridge reads or writes.
namespace property {
inline constexpr std::uint8_t kSessionExpiryInterval = 0x11;        // u32
inline constexpr std::uint8_t kAssignedClientId = 0x12;             // string
inline constexpr std::uint8_t kServerKeepAlive = 0x13;              // u16
inline constexpr std::uint8_t kRequestProblemInformation = 0x17;    // byte
inline constexpr std::uint8_t kReasonString = 0x1F;                 // string
inline constexpr std::uint8_t kReceiveMaximum = 0x21;               // u16
inline constexpr std::uint8_t kTopicAliasMaximum = 0x22;            // u16
inline constexpr std::uint8_t kTopicAlias = 0x23;                   // u16
inline constexpr std::uint8_t kUserProperty = 0x26;                 // string pair
inline constexpr std::uint8_t kMaximumPacketSize = 0x27;            // u32
inline constexpr std::uint8_t kSharedSubscriptionAvailable = 0x2A;  // byte
}  // namespace property

// ---- Properties (MQTT 5 section 2.2.2): a block of (identifier, value) pairs ----------------

// One property's value: integers (byte, u16, u32, variable byte integer) in `number`, strings
// and binary data in `text`, a string pair's name in `text` and value in `second`.
struct Property {
  std::uint8_t id = 0;
  std::uint32_t number = 0;
  std::string_view text;
  std::string_view second;
};

// Decodes a property block (without its length prefix). nullopt and `error` when malformed: an
// unknown identifier, a value that runs past the block, a string that is not UTF-8.
std::optional<std::vector<Property>> parse_properties(std::string_view block, std::string& error);
// The first property `id` in a valid block, if any.
std::optional<Property> find_property(std::string_view block, std::uint8_t id);
// The block without any property `id` (a valid block in, a valid block out).
std::string without_property(std::string_view block, std::uint8_t id);
// Appends a property to a block: integer-valued ids take `number` (encoded at the id's width),
// string-valued ones `text`.
void append_property(std::string& block, std::uint8_t id, std::uint32_t number);
void append_property(std::string& block, std::uint8_t id, std::string_view text);

// ---- The stream ----------------------------------------------------------------------------

// Cuts a byte stream into whole packets (fixed header included). Bytes of packets that arrive
// whole within one feed() are not copied: next() returns views into the fed bytes, valid until
// the next feed(). Only an incomplete packet at the end of a feed is kept, in its own buffer.
class PacketReader {
 public:
  // kOversized (only after skip_oversized): the start of a packet over the limit, the rest of
  // which is skipped as it comes.
  enum class Status : std::uint8_t { kPacket, kNeedMore, kError, kOversized };

  // Packets whose total size (fixed header included) is over `max_packet_bytes` are an error,
  // reported as soon as their length is known: their body is never buffered.
  explicit PacketReader(std::size_t max_packet_bytes);

  // Call next() until it says kNeedMore before feeding again.
  void feed(std::string_view bytes);
  // The reader keeps a view of the bytes until the next feed: a temporary would dangle.
  void feed(std::string&&) = delete;
  // kPacket: `packet` is the next whole packet. kError: the stream is malformed (a remaining
  // length over 4 bytes, packet type 0, or a packet over the limit) and stays in error.
  Status next(std::string_view& packet);

  // From now on a packet over the limit is no error: next() gives its first `prefix_bytes` (or
  // all of it, when shorter) as kOversized and skips the rest, so the stream goes on.
  void skip_oversized(std::size_t prefix_bytes) { oversized_prefix_ = prefix_bytes; }

  const std::string& error() const { return error_; }
  bool too_large() const { return too_large_; }
  // Bytes held for an incomplete packet.
  std::size_t buffered() const { return partial_.size(); }

 private:
  std::size_t max_packet_bytes_;
  std::string partial_;     // an incomplete packet carried over from earlier feeds
  std::string completed_;   // the packet `partial_` became: a view of it is valid until feed()
  std::string_view input_;  // what is left of the current feed
  std::string error_;
  bool too_large_ = false;
  bool failed_ = false;
  std::size_t oversized_prefix_ = 0;  // skip_oversized; 0: an oversized packet is an error
  std::uint64_t skip_left_ = 0;       // bytes of an oversized packet still to skip
};

// The type in a whole packet's first byte (the reader guarantees it is 1 to 15).
inline PacketType packet_type(std::string_view packet) {
  return static_cast<PacketType>(static_cast<unsigned char>(packet[0]) >> 4);
}
// The packet's variable header and payload (after the fixed header).
std::string_view packet_body(std::string_view packet);
// nullopt when the fixed header's flags are what MQTT requires of the packet's type (PUBREL,
// SUBSCRIBE and UNSUBSCRIBE 0x2; PUBLISH any but QoS 3; others 0) and the type exists in
// `version` (AUTH is MQTT 5 only); else a short reason. For packets relayed without parsing
// (PINGREQ, acknowledgements); the parsers check this themselves.
std::optional<std::string> fixed_header_problem(std::string_view packet, std::uint8_t version);

// ---- Packets -------------------------------------------------------------------------------

struct Will {
  std::string properties;  // MQTT 5 will properties (block without its length)
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  bool operator==(const Will&) const = default;
};

struct ConnectPacket {
  std::uint8_t version = kMqtt311;  // kMqtt31, kMqtt311 or kMqtt5
  bool clean_start = true;
  std::uint16_t keepalive = 0;  // seconds
  std::string properties;       // MQTT 5 (block without its length)
  std::string client_id;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<std::string> password;  // binary data in MQTT
  bool operator==(const ConnectPacket&) const = default;
};
std::optional<ConnectPacket> parse_connect(std::string_view packet, std::string& error);
// The protocol level a CONNECT names, when it names MQTT ("MQTT", or 3.1's "MQIsdp"), and whether
// this relay speaks it: for the answer to one that parse_connect refuses (a level it does not
// speak is owed CONNACK 0x01 [MQTT-3.1.2-2], so that a client able to speak an older one can
// try it; an MQTT 5 client CONNACK 0x81).
std::optional<std::uint8_t> connect_level(std::string_view connect_packet, bool& supported);
// The protocol name follows `version` ("MQIsdp" for 3.1, "MQTT" otherwise).
std::string encode_connect(const ConnectPacket& connect);

struct ConnackPacket {
  bool session_present = false;
  std::uint8_t code = 0;   // 3.1.1 return code or MQTT 5 reason code
  std::string properties;  // MQTT 5
  bool operator==(const ConnackPacket&) const = default;
};
std::optional<ConnackPacket> parse_connack(std::string_view packet, std::uint8_t version,
                                           std::string& error);
std::string encode_connack(const ConnackPacket& connack, std::uint8_t version);

struct PublishPacket {
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::string_view topic;       // may be empty in MQTT 5 when a Topic Alias stands for it
  std::uint16_t packet_id = 0;  // QoS 1 and 2 only
  std::string_view properties;  // MQTT 5
  std::string_view payload;
  bool operator==(const PublishPacket&) const = default;  // compares the viewed bytes
};
// Checks the topic is a valid topic name (no wildcards) unless it is empty in MQTT 5, QoS is not
// 3, and a QoS 1/2 publish has a non-zero packet id.
std::optional<PublishPacket> parse_publish(std::string_view packet, std::uint8_t version,
                                           std::string& error);
// Properties are written in MQTT 5 only; a QoS 0 publish carries no packet id.
std::string encode_publish(const PublishPacket& publish, std::uint8_t version);

struct SubscribeEntry {
  std::string filter;
  std::uint8_t options = 0;  // the subscription options byte (QoS in the low two bits)
  bool operator==(const SubscribeEntry&) const = default;
};
struct SubscribePacket {
  std::uint16_t packet_id = 0;
  std::string properties;  // MQTT 5
  std::vector<SubscribeEntry> entries;
  bool operator==(const SubscribePacket&) const = default;
};
// At least one entry; reserved bits of each options byte zero; filters are not checked here.
std::optional<SubscribePacket> parse_subscribe(std::string_view packet, std::uint8_t version,
                                               std::string& error);
std::string encode_subscribe(const SubscribePacket& subscribe, std::uint8_t version);

// SUBACK and (MQTT 5) UNSUBACK: a packet id, properties and one code per filter.
struct AckListPacket {
  std::uint16_t packet_id = 0;
  std::string properties;  // MQTT 5
  std::vector<std::uint8_t> codes;
  bool operator==(const AckListPacket&) const = default;
};
std::optional<AckListPacket> parse_suback(std::string_view packet, std::uint8_t version,
                                          std::string& error);
std::string encode_suback(const AckListPacket& suback, std::uint8_t version);
// MQTT 3.1.1's UNSUBACK carries no codes (`codes` ignored, parsed empty).
std::optional<AckListPacket> parse_unsuback(std::string_view packet, std::uint8_t version,
                                            std::string& error);
std::string encode_unsuback(const AckListPacket& unsuback, std::uint8_t version);

// SUBSCRIBE and UNSUBSCRIBE read in place, for the relay: a 4 MiB packet may hold a million
// filters, which parsed into a vector of strings took 65-99 MB at once. read_subscribe and
// read_unsubscribe check the whole packet as parse_subscribe and parse_unsubscribe do; the
// FilterList then walks its entries without copying them (copy it to walk them again).
class FilterList {
 public:
  FilterList() = default;
  // Over entries that read_subscribe (with options) or read_unsubscribe has checked.
  FilterList(std::string_view entries, bool with_options)
      : rest_(entries), with_options_(with_options) {}
  // The next filter and, in a SUBSCRIBE, its options byte (0 in an UNSUBSCRIBE); false after
  // the last.
  bool next(std::string_view& filter, std::uint8_t& options);

 private:
  std::string_view rest_;
  bool with_options_ = false;
};
struct FilterListPacket {
  std::uint16_t packet_id = 0;
  std::string_view properties;  // MQTT 5
  FilterList filters;           // at least one
};
std::optional<FilterListPacket> read_subscribe(std::string_view packet, std::uint8_t version,
                                               std::string& error);
std::optional<FilterListPacket> read_unsubscribe(std::string_view packet, std::uint8_t version,
                                                 std::string& error);
// A SUBSCRIBE of entries put together with append_subscribe_entry.
void append_subscribe_entry(std::string& entries, std::string_view filter, std::uint8_t options);
std::string encode_subscribe(std::uint16_t packet_id, std::string_view properties,
                             std::string_view entries, std::uint8_t version);

struct UnsubscribePacket {
  std::uint16_t packet_id = 0;
  std::string properties;  // MQTT 5
  std::vector<std::string> filters;
  bool operator==(const UnsubscribePacket&) const = default;
};
std::optional<UnsubscribePacket> parse_unsubscribe(std::string_view packet, std::uint8_t version,
                                                   std::string& error);
std::string encode_unsubscribe(const UnsubscribePacket& unsubscribe, std::uint8_t version);

// PUBACK, PUBREC, PUBREL, PUBCOMP: the packet id; in MQTT 5 also a reason code (0 when the packet
// omits it) and properties.
struct AckPacket {
  PacketType type = PacketType::kPuback;
  std::uint16_t packet_id = 0;
  std::uint8_t code = reason::kSuccess;
  std::string properties;  // MQTT 5
  bool operator==(const AckPacket&) const = default;
};
std::optional<AckPacket> parse_ack(std::string_view packet, std::uint8_t version,
                                   std::string& error);
// In MQTT 5 the shortest form: no reason code when it is 0 and there are no properties.
std::string encode_ack(const AckPacket& ack, std::uint8_t version);

// DISCONNECT: in MQTT 5 with a reason code and, when `reason_string` is not empty, a Reason
// String property (cut to fit); in 3.1 and 3.1.1 the bare two bytes.
std::string encode_disconnect(std::uint8_t version, std::uint8_t code,
                              std::string_view reason_string = {});
// Whether `code` may stand in an MQTT 5 DISCONNECT (a subset: 0x88 "Server unavailable" and 0x8C
// "Bad authentication method", say, exist only in CONNACK, and clients such as mqtt.js treat
// anything else as a fatal error).
bool is_disconnect_reason(std::uint8_t code);
// MQTT 5 DISCONNECT's reason code (0 when absent); nullopt when malformed or not a DISCONNECT
// reason code.
std::optional<std::uint8_t> parse_disconnect(std::string_view packet, std::uint8_t version,
                                             std::string& error);

}  // namespace wsbridge::mqtt::wire
