// CONNECT, CONNACK and PUBLISH: parsers and encoders (MQTT 3.1, 3.1.1 and 5.0). The other
// packets are in mqtt_acks.cpp, properties in mqtt_properties.cpp, the stream in mqtt_reader.cpp.
#include "passthrough/mqtt_packets.hpp"
#include "passthrough/mqtt_wire_detail.hpp"
#include "topic.hpp"

namespace wsbridge::mqtt::wire {

namespace {

using detail::Cursor;
using detail::flags_of;
using detail::refuse;

constexpr auto kConnectType = static_cast<std::uint32_t>(PacketType::kConnect);

bool fail(std::string& error, std::string reason) {
  error = std::move(reason);
  return false;
}

// A UTF-8 string field: `what` names it in the error.
bool read_string(Cursor& in, std::string_view& out, const char* what, std::string& error) {
  if (!in.prefixed(out)) return fail(error, std::string(what) + " runs past the packet");
  if (!detail::valid_mqtt_string(out)) {
    return fail(error,
                std::string(what) +
                    " is not a valid UTF-8 string without control characters or noncharacters");
  }
  return true;
}

bool read_binary(Cursor& in, std::string_view& out, const char* what, std::string& error) {
  if (!in.prefixed(out)) return fail(error, std::string(what) + " runs past the packet");
  return true;
}

// The protocol name for the reason of an unsupported protocol: printable ASCII only, short.
std::string printable(std::string_view name) {
  std::string out;
  for (char c : name.substr(0, 16)) out += (c >= 0x20 && c < 0x7F) ? c : '?';
  return out;
}

bool parse_will(Cursor& in, std::uint8_t version, std::uint8_t flags, Will& will,
                std::string& error) {
  will.qos = (flags >> 3) & 0x03;
  will.retain = (flags & 0x20) != 0;
  if (will.qos == 3) return fail(error, "will QoS 3 is invalid");
  std::string_view properties, topic, payload;
  if (version == kMqtt5 && !detail::read_properties(in, detail::kWillContext, properties, error)) {
    error = "will properties: " + error;
    return false;
  }
  if (!read_string(in, topic, "will topic", error)) return false;
  if (auto problem = topic_name_problem(topic)) return fail(error, "will topic " + *problem);
  if (!read_binary(in, payload, "will payload", error)) return false;
  will.properties = properties;
  will.topic = topic;
  will.payload = payload;
  return true;
}

}  // namespace

std::optional<std::uint8_t> connect_level(std::string_view packet, bool& supported) {
  supported = false;
  if (packet_type(packet) != PacketType::kConnect) return std::nullopt;
  Cursor in(packet_body(packet));
  std::string_view name;
  std::uint8_t level = 0;
  if (!in.prefixed(name) || !in.u8(level) || (name != "MQIsdp" && name != "MQTT")) {
    return std::nullopt;
  }
  supported = name == "MQIsdp" ? level == kMqtt31 : level == kMqtt311 || level == kMqtt5;
  return level;
}

std::optional<ConnectPacket> parse_connect(std::string_view packet, std::string& error) {
  if (packet_type(packet) != PacketType::kConnect) return refuse(error, "not a CONNECT");
  if (flags_of(packet) != 0) return refuse(error, "CONNECT fixed header flags must be 0");
  Cursor in(packet_body(packet));
  std::string_view name;
  std::uint8_t level = 0;
  if (!in.prefixed(name) || !in.u8(level)) {
    return refuse(error, "CONNECT too short for a protocol name and level");
  }
  if (!((name == "MQIsdp" && level == kMqtt31) ||
        (name == "MQTT" && (level == kMqtt311 || level == kMqtt5)))) {
    return refuse(
        error, "unsupported protocol \"" + printable(name) + "\" level " + std::to_string(level));
  }
  ConnectPacket out;
  out.version = level;
  std::uint8_t flags = 0;
  if (!in.u8(flags) || !in.u16(out.keepalive)) {
    return refuse(error, "CONNECT too short for its flags and keep alive");
  }
  if ((flags & 0x01) != 0) return refuse(error, "CONNECT reserved flag is set");
  out.clean_start = (flags & 0x02) != 0;
  const bool has_will = (flags & 0x04) != 0;
  const bool has_password = (flags & 0x40) != 0;
  const bool has_username = (flags & 0x80) != 0;
  if (!has_will && (flags & 0x38) != 0) {
    return refuse(error, "will QoS or retain set without a will");
  }
  // MQTT 5 allows a password alone (section 3.1.2.9); 3.1 and 3.1.1 do not.
  if (has_password && !has_username && level != kMqtt5) {
    return refuse(error, "password without a user name");
  }
  if (level == kMqtt5) {
    std::string_view properties;
    if (!detail::read_properties(in, kConnectType, properties, error)) return std::nullopt;
    out.properties = properties;
  }
  std::string_view text;
  if (!read_string(in, text, "client id", error)) return std::nullopt;
  out.client_id = text;
  if (has_will) {
    out.will.emplace();
    if (!parse_will(in, level, flags, *out.will, error)) return std::nullopt;
  }
  if (has_username) {
    if (!read_string(in, text, "user name", error)) return std::nullopt;
    out.username = std::string(text);
  }
  if (has_password) {
    if (!read_binary(in, text, "password", error)) return std::nullopt;
    out.password = std::string(text);
  }
  if (!in.empty()) return refuse(error, "trailing bytes after CONNECT");
  return out;
}

std::string encode_connect(const ConnectPacket& connect) {
  std::string body;
  detail::put_prefixed(body, connect.version == kMqtt31 ? "MQIsdp" : "MQTT");
  detail::put_u8(body, connect.version);
  std::uint8_t flags = connect.clean_start ? 0x02 : 0;
  if (connect.will) {
    flags |= 0x04 | static_cast<std::uint8_t>((connect.will->qos & 0x03) << 3);
    if (connect.will->retain) flags |= 0x20;
  }
  if (connect.password) flags |= 0x40;
  if (connect.username) flags |= 0x80;
  detail::put_u8(body, flags);
  detail::put_u16(body, connect.keepalive);
  if (connect.version == kMqtt5) detail::put_properties(body, connect.properties);
  detail::put_prefixed(body, connect.client_id);
  if (connect.will) {
    if (connect.version == kMqtt5) detail::put_properties(body, connect.will->properties);
    detail::put_prefixed(body, connect.will->topic);
    detail::put_prefixed(body, connect.will->payload);
  }
  if (connect.username) detail::put_prefixed(body, *connect.username);
  if (connect.password) detail::put_prefixed(body, *connect.password);
  return detail::packet(0x10, body);
}

std::optional<ConnackPacket> parse_connack(std::string_view packet, std::uint8_t version,
                                           std::string& error) {
  if (packet_type(packet) != PacketType::kConnack) return refuse(error, "not a CONNACK");
  if (flags_of(packet) != 0) return refuse(error, "CONNACK fixed header flags must be 0");
  Cursor in(packet_body(packet));
  std::uint8_t ack_flags = 0;
  ConnackPacket out;
  if (!in.u8(ack_flags) || !in.u8(out.code)) return refuse(error, "CONNACK too short");
  if ((ack_flags & 0xFE) != 0) return refuse(error, "CONNACK reserved flags are set");
  out.session_present = (ack_flags & 0x01) != 0;
  // An MQTT 5 CONNACK always has a property length; one without is tolerated as "no properties".
  if (version == kMqtt5 && !in.empty()) {
    std::string_view properties;
    if (!detail::read_properties(in, static_cast<std::uint32_t>(PacketType::kConnack), properties,
                                 error)) {
      return std::nullopt;
    }
    out.properties = properties;
  }
  if (!in.empty()) return refuse(error, "trailing bytes after CONNACK");
  return out;
}

std::string encode_connack(const ConnackPacket& connack, std::uint8_t version) {
  std::string body;
  detail::put_u8(body, connack.session_present ? 1 : 0);
  detail::put_u8(body, connack.code);
  if (version == kMqtt5) detail::put_properties(body, connack.properties);
  return detail::packet(0x20, body);
}

std::optional<PublishPacket> parse_publish(std::string_view packet, std::uint8_t version,
                                           std::string& error) {
  if (packet_type(packet) != PacketType::kPublish) return refuse(error, "not a PUBLISH");
  const std::uint8_t flags = flags_of(packet);
  PublishPacket out;
  out.retain = (flags & 0x01) != 0;
  out.qos = (flags >> 1) & 0x03;
  out.dup = (flags & 0x08) != 0;
  if (out.qos == 3) return refuse(error, "PUBLISH QoS 3 is invalid");
  if (out.dup && out.qos == 0) return refuse(error, "PUBLISH DUP set with QoS 0");
  Cursor in(packet_body(packet));
  if (!in.prefixed(out.topic)) return refuse(error, "PUBLISH topic runs past the packet");
  // An empty topic is MQTT 5's way of using a Topic Alias (checked below, with the properties).
  const bool alias_topic = version == kMqtt5 && out.topic.empty();
  if (!alias_topic) {
    if (auto problem = topic_name_problem(out.topic)) {
      return refuse(error, "PUBLISH topic " + *problem);
    }
  }
  if (out.qos > 0) {
    if (!in.u16(out.packet_id)) return refuse(error, "PUBLISH too short for its packet id");
    if (out.packet_id == 0) return refuse(error, "PUBLISH packet id 0");
  }
  if (version == kMqtt5) {
    if (!detail::read_properties(in, static_cast<std::uint32_t>(PacketType::kPublish),
                                 out.properties, error)) {
      return std::nullopt;
    }
    if (alias_topic && !find_property(out.properties, property::kTopicAlias)) {
      return refuse(error, "PUBLISH has an empty topic and no Topic Alias");
    }
  }
  out.payload = in.rest();
  return out;
}

std::string encode_publish(const PublishPacket& publish, std::uint8_t version) {
  std::string body;
  body.reserve(publish.topic.size() + publish.properties.size() + publish.payload.size() + 8);
  detail::put_prefixed(body, publish.topic);
  if (publish.qos > 0) detail::put_u16(body, publish.packet_id);
  if (version == kMqtt5) detail::put_properties(body, publish.properties);
  body.append(publish.payload);
  const auto first = static_cast<std::uint8_t>(
      0x30 | (publish.dup ? 0x08 : 0) | ((publish.qos & 0x03) << 1) | (publish.retain ? 0x01 : 0));
  return detail::packet(first, body);
}

}  // namespace wsbridge::mqtt::wire
