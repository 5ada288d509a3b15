// SUBSCRIBE, UNSUBSCRIBE, their acknowledgements, PUBACK/PUBREC/PUBREL/PUBCOMP and DISCONNECT:
// parsers and encoders (MQTT 3.1, 3.1.1 and 5.0).
#include "passthrough/mqtt_packets.hpp"
#include "passthrough/mqtt_wire_detail.hpp"
#include "topic.hpp"

namespace wsbridge::mqtt::wire {

namespace {

using detail::Cursor;
using detail::flags_of;
using detail::refuse;

constexpr std::uint32_t type_number(PacketType type) {
  return static_cast<std::uint32_t>(type);
}

// The packet id (non-zero: MQTT 3.1.1 section 2.3.1) and, in MQTT 5, the properties that start
// SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK.
bool read_id_and_properties(Cursor& in, std::uint8_t version, PacketType type,
                            std::uint16_t& packet_id, std::string_view& properties,
                            std::string& error) {
  if (!in.u16(packet_id)) {
    error = "packet too short for its packet id";
    return false;
  }
  if (packet_id == 0) {
    error = "packet id 0";
    return false;
  }
  if (version != kMqtt5) return true;
  return detail::read_properties(in, type_number(type), properties, error);
}

std::string id_and_properties(std::uint16_t packet_id, std::string_view properties,
                              std::uint8_t version) {
  std::string body;
  detail::put_u16(body, packet_id);
  if (version == kMqtt5) detail::put_properties(body, properties);
  return body;
}

bool read_filter(Cursor& in, std::string& error) {
  std::string_view filter;
  if (!in.prefixed(filter)) {
    error = "topic filter runs past the packet";
    return false;
  }
  if (!detail::valid_mqtt_string(filter)) {
    error = "topic filter is not a valid UTF-8 string without control characters or noncharacters";
    return false;
  }
  return true;
}

// A SUBSCRIBE's entries (a filter and its options byte each) or an UNSUBSCRIBE's filters, all of
// them checked, before anyone acts on the first.
std::optional<FilterListPacket> read_filter_list(std::string_view packet, std::uint8_t version,
                                                 PacketType type, std::string& error) {
  const bool subscribe = type == PacketType::kSubscribe;
  const char* name = subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE";
  if (packet_type(packet) != type) {
    return refuse(error, subscribe ? "not a SUBSCRIBE" : "not an UNSUBSCRIBE");
  }
  if (flags_of(packet) != 0x2)
    return refuse(error, std::string(name) + " fixed header flags must be 2");
  Cursor in(packet_body(packet));
  FilterListPacket out;
  if (!read_id_and_properties(in, version, type, out.packet_id, out.properties, error)) {
    return std::nullopt;
  }
  if (in.empty()) return refuse(error, std::string(name) + " without topic filters");
  out.filters = FilterList(in.rest(), subscribe);
  // Reserved option bits: 2-7 before MQTT 5; 6-7 in MQTT 5 (No Local, Retain As Published and
  // Retain Handling took 2-5).
  const std::uint8_t reserved = version == kMqtt5 ? 0xC0 : 0xFC;
  while (!in.empty()) {
    if (!read_filter(in, error)) return std::nullopt;
    if (!subscribe) continue;
    std::uint8_t options = 0;
    if (!in.u8(options)) return refuse(error, "SUBSCRIBE filter without its options");
    if ((options & reserved) != 0) return refuse(error, "SUBSCRIBE options have reserved bits set");
    if ((options & 0x03) == 3) return refuse(error, "SUBSCRIBE QoS 3 is invalid");
    if (version == kMqtt5 && ((options >> 4) & 0x03) == 3) {
      return refuse(error, "SUBSCRIBE retain handling 3 is invalid");
    }
  }
  return out;
}

std::optional<AckListPacket> parse_ack_list(std::string_view packet, std::uint8_t version,
                                            PacketType type, std::string& error) {
  const char* name = type == PacketType::kSuback ? "SUBACK" : "UNSUBACK";
  if (packet_type(packet) != type) return refuse(error, std::string("not a ") + name);
  if (flags_of(packet) != 0) {
    return refuse(error, std::string(name) + " fixed header flags must be 0");
  }
  Cursor in(packet_body(packet));
  AckListPacket out;
  std::string_view properties;
  if (!read_id_and_properties(in, version, type, out.packet_id, properties, error)) {
    return std::nullopt;
  }
  out.properties = properties;
  // MQTT 3.x's UNSUBACK is the packet id alone; every other list has one code per filter.
  if (type == PacketType::kUnsuback && version != kMqtt5) {
    if (!in.empty()) return refuse(error, "trailing bytes after UNSUBACK");
    return out;
  }
  const std::string_view codes = in.rest();
  if (codes.empty()) return refuse(error, std::string(name) + " without reason codes");
  out.codes.assign(codes.begin(), codes.end());
  return out;
}

std::string encode_ack_list(const AckListPacket& ack, std::uint8_t version, std::uint8_t first,
                            bool with_codes) {
  std::string body = id_and_properties(ack.packet_id, ack.properties, version);
  if (with_codes) {
    for (std::uint8_t code : ack.codes) detail::put_u8(body, code);
  }
  return detail::packet(first, body);
}

// A reason string that fits a small packet: at most this many bytes, cut at a character
// boundary, a valid MQTT string (else controls and non-ASCII bytes become '?').
constexpr std::size_t kMaxReasonString = 512;

std::string clean_reason(std::string_view text) {
  if (text.size() > kMaxReasonString) {
    std::size_t cut = kMaxReasonString;
    // Back up over continuation bytes (at most 3: a character is 4 bytes at most) so a character
    // is not split; text that is not UTF-8 anyway is cut where it is, and cleaned below.
    while (cut > kMaxReasonString - 3 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
      --cut;
    }
    text = text.substr(0, cut);
  }
  if (detail::valid_mqtt_string(text)) return std::string(text);
  std::string out(text);
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7F) c = '?';  // (controls, and every byte of what is not ASCII)
  }
  return out;
}

}  // namespace

bool FilterList::next(std::string_view& filter, std::uint8_t& options) {
  Cursor in(rest_);
  options = 0;
  if (!in.prefixed(filter) || (with_options_ && !in.u8(options))) return false;
  rest_ = in.rest();
  return true;
}

std::optional<FilterListPacket> read_subscribe(std::string_view packet, std::uint8_t version,
                                               std::string& error) {
  return read_filter_list(packet, version, PacketType::kSubscribe, error);
}

std::optional<FilterListPacket> read_unsubscribe(std::string_view packet, std::uint8_t version,
                                                 std::string& error) {
  return read_filter_list(packet, version, PacketType::kUnsubscribe, error);
}

void append_subscribe_entry(std::string& entries, std::string_view filter, std::uint8_t options) {
  detail::put_prefixed(entries, filter);
  detail::put_u8(entries, options);
}

std::string encode_subscribe(std::uint16_t packet_id, std::string_view properties,
                             std::string_view entries, std::uint8_t version) {
  std::string body = id_and_properties(packet_id, properties, version);
  body += entries;
  return detail::packet(0x82, body);
}

std::optional<SubscribePacket> parse_subscribe(std::string_view packet, std::uint8_t version,
                                               std::string& error) {
  auto read = read_subscribe(packet, version, error);
  if (!read) return std::nullopt;
  SubscribePacket out{read->packet_id, std::string(read->properties), {}};
  std::string_view filter;
  std::uint8_t options = 0;
  while (read->filters.next(filter, options)) out.entries.push_back({std::string(filter), options});
  return out;
}

std::string encode_subscribe(const SubscribePacket& subscribe, std::uint8_t version) {
  std::string entries;
  for (const auto& entry : subscribe.entries) {
    append_subscribe_entry(entries, entry.filter, entry.options);
  }
  return encode_subscribe(subscribe.packet_id, subscribe.properties, entries, version);
}

std::optional<AckListPacket> parse_suback(std::string_view packet, std::uint8_t version,
                                          std::string& error) {
  return parse_ack_list(packet, version, PacketType::kSuback, error);
}

std::string encode_suback(const AckListPacket& suback, std::uint8_t version) {
  return encode_ack_list(suback, version, 0x90, true);
}

std::optional<AckListPacket> parse_unsuback(std::string_view packet, std::uint8_t version,
                                            std::string& error) {
  return parse_ack_list(packet, version, PacketType::kUnsuback, error);
}

std::string encode_unsuback(const AckListPacket& unsuback, std::uint8_t version) {
  return encode_ack_list(unsuback, version, 0xB0, version == kMqtt5);
}

std::optional<UnsubscribePacket> parse_unsubscribe(std::string_view packet, std::uint8_t version,
                                                   std::string& error) {
  auto read = read_unsubscribe(packet, version, error);
  if (!read) return std::nullopt;
  UnsubscribePacket out{read->packet_id, std::string(read->properties), {}};
  std::string_view filter;
  std::uint8_t options = 0;
  while (read->filters.next(filter, options)) out.filters.emplace_back(filter);
  return out;
}

std::string encode_unsubscribe(const UnsubscribePacket& unsubscribe, std::uint8_t version) {
  std::string body = id_and_properties(unsubscribe.packet_id, unsubscribe.properties, version);
  for (const auto& filter : unsubscribe.filters) detail::put_prefixed(body, filter);
  return detail::packet(0xA2, body);
}

std::optional<AckPacket> parse_ack(std::string_view packet, std::uint8_t version,
                                   std::string& error) {
  AckPacket out;
  out.type = packet_type(packet);
  if (out.type != PacketType::kPuback && out.type != PacketType::kPubrec &&
      out.type != PacketType::kPubrel && out.type != PacketType::kPubcomp) {
    return refuse(error, "not a PUBACK, PUBREC, PUBREL or PUBCOMP");
  }
  const std::uint8_t expected_flags = out.type == PacketType::kPubrel ? 0x2 : 0;
  if (flags_of(packet) != expected_flags) {
    return refuse(error,
                  "acknowledgement fixed header flags must be " + std::to_string(expected_flags));
  }
  Cursor in(packet_body(packet));
  if (!in.u16(out.packet_id)) return refuse(error, "acknowledgement too short for its packet id");
  if (out.packet_id == 0) return refuse(error, "packet id 0");
  // MQTT 5 (section 3.4.2.1): the reason code may be left out when it is 0 and there are no
  // properties, and the property length when there are none.
  if (version == kMqtt5 && !in.empty()) {
    in.u8(out.code);
    if (!in.empty()) {
      std::string_view block;
      if (!detail::read_properties(in, type_number(out.type), block, error)) return std::nullopt;
      out.properties = block;
    }
  }
  if (!in.empty()) return refuse(error, "trailing bytes after the acknowledgement");
  return out;
}

std::string encode_ack(const AckPacket& ack, std::uint8_t version) {
  std::string body;
  detail::put_u16(body, ack.packet_id);
  if (version == kMqtt5 && (ack.code != reason::kSuccess || !ack.properties.empty())) {
    detail::put_u8(body, ack.code);
    if (!ack.properties.empty()) detail::put_properties(body, ack.properties);
  }
  const auto type = static_cast<std::uint8_t>(ack.type);
  return detail::packet(static_cast<std::uint8_t>((type << 4) | (type == 6 ? 0x2 : 0)), body);
}

std::string encode_disconnect(std::uint8_t version, std::uint8_t code,
                              std::string_view reason_string) {
  std::string body;
  if (version == kMqtt5 && (code != reason::kSuccess || !reason_string.empty())) {
    detail::put_u8(body, code);
    if (!reason_string.empty()) {
      std::string properties;
      append_property(properties, property::kReasonString, clean_reason(reason_string));
      detail::put_properties(body, properties);
    }
  }
  return detail::packet(0xE0, body);
}

bool is_disconnect_reason(std::uint8_t code) {
  // MQTT 5.0, table 3-10.
  switch (code) {
    case 0x00:
    case 0x04:
    case 0x80:
    case 0x81:
    case 0x82:
    case 0x83:
    case 0x87:
    case 0x89:
    case 0x8B:
    case 0x8D:
    case 0x8E:
    case 0x8F:
    case 0x90:
    case 0x93:
    case 0x94:
    case 0x95:
    case 0x96:
    case 0x97:
    case 0x98:
    case 0x99:
    case 0x9A:
    case 0x9B:
    case 0x9C:
    case 0x9D:
    case 0x9E:
    case 0x9F:
    case 0xA0:
    case 0xA1:
    case 0xA2:
      return true;
    default:
      return false;
  }
}

std::optional<std::uint8_t> parse_disconnect(std::string_view packet, std::uint8_t version,
                                             std::string& error) {
  if (packet_type(packet) != PacketType::kDisconnect) return refuse(error, "not a DISCONNECT");
  if (flags_of(packet) != 0) return refuse(error, "DISCONNECT fixed header flags must be 0");
  Cursor in(packet_body(packet));
  std::uint8_t code = reason::kSuccess;
  if (version == kMqtt5 && !in.empty()) {
    in.u8(code);
    if (!is_disconnect_reason(code)) {
      return refuse(error, "DISCONNECT reason code " + std::to_string(code) + " is not one");
    }
    if (!in.empty()) {
      std::string_view block;
      if (!detail::read_properties(in, type_number(PacketType::kDisconnect), block, error)) {
        return std::nullopt;
      }
    }
  }
  if (!in.empty()) return refuse(error, "trailing bytes after DISCONNECT");
  return code;
}

}  // namespace wsbridge::mqtt::wire
