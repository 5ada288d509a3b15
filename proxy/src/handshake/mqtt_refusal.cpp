#include "handshake/mqtt_refusal.hpp"

#include <cstdint>

#include "wsbridge/text.hpp"

namespace wsbridge::mqtt_refusal {

namespace {

constexpr unsigned char kConnect = 0x10;
constexpr unsigned char kConnack = 0x20;
constexpr unsigned char kServerUnavailable311 = 0x03;  // MQTT 3.1 and 3.1.1 return code
constexpr unsigned char kServerUnavailable5 = 0x88;    // MQTT 5 reason code
constexpr unsigned char kReasonStringProperty = 0x1F;

void put_varint(std::string& out, std::size_t n) {
  do {
    auto byte = static_cast<unsigned char>(n % 128);
    n /= 128;
    if (n > 0) byte |= 0x80;
    out.push_back(static_cast<char>(byte));
  } while (n > 0);
}

}  // namespace

std::optional<std::size_t> packet_size(std::string_view bytes) {
  std::size_t length = 0;
  for (std::size_t i = 1; i < bytes.size() && i <= 4; ++i) {
    const auto byte = static_cast<unsigned char>(bytes[i]);
    length += static_cast<std::size_t>(byte & 0x7F) << (7 * (i - 1));
    if ((byte & 0x80) == 0) return i + 1 + length;
  }
  if (bytes.size() > 5) return 0;  // a fifth length byte: malformed
  return std::nullopt;
}

bool is_mqtt_subprotocol(std::string_view name) {
  return name == "mqtt" || name == "mqttv3.1";
}

std::string connack_for(std::string_view connect, std::string_view reason) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(connect[i]); };
  if (connect.size() < 2 || byte(0) != kConnect) return {};
  // Remaining length (1 to 4 bytes), then the protocol name ("MQTT" or "MQIsdp") and level.
  std::size_t i = 1;
  while (i < connect.size() && i < 5 && (byte(i) & 0x80) != 0) ++i;
  ++i;
  if (i + 2 > connect.size()) return {};
  const std::size_t name_len = (byte(i) << 8) | byte(i + 1);
  const std::size_t level_at = i + 2 + name_len;
  if (level_at >= connect.size()) return {};
  const unsigned level = byte(level_at);

  std::string out;
  out.push_back(static_cast<char>(kConnack));
  if (level < 5) {
    out += std::string("\x02\x00", 2);
    out.push_back(static_cast<char>(kServerUnavailable311));
    return out;
  }
  // MQTT 5: flags, reason code, properties (the Reason String, cut to keep the packet small).
  const std::string_view shown = text::utf8_prefix(reason, 512);
  std::string properties;
  properties.push_back(static_cast<char>(kReasonStringProperty));
  properties.push_back(static_cast<char>(shown.size() >> 8));
  properties.push_back(static_cast<char>(shown.size() & 0xff));
  properties.append(shown);
  std::string body;
  body.push_back('\0');
  body.push_back(static_cast<char>(kServerUnavailable5));
  put_varint(body, properties.size());
  body += properties;
  put_varint(out, body.size());
  out += body;
  return out;
}

}  // namespace wsbridge::mqtt_refusal
