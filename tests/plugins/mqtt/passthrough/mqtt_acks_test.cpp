// SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PUBACK/PUBREC/PUBREL/PUBCOMP and DISCONNECT
// (plugins/mqtt/passthrough/mqtt_acks.cpp): hand-written vectors for MQTT 3.1.1 and 5, round
// trips and malformed packets refused with a reason.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "passthrough/mqtt_packets.hpp"
#include "wire_bytes.hpp"

namespace wsbridge::mqtt::wire {
namespace {

using namespace std::string_literals;
using test::bytes;
using test::hex;

struct MalformedAck {
  std::string packet;
  std::uint8_t version;
  std::string reason;  // a part of the error
};

template <typename Parse>
void expect_refused(const std::vector<MalformedAck>& cases, Parse parse) {
  for (const auto& m : cases) {
    std::string error;
    EXPECT_FALSE(parse(m.packet, m.version, error)) << hex(m.packet);
    EXPECT_NE(error.find(m.reason), std::string::npos)
        << hex(m.packet) << ": \"" << error << "\", expected \"" << m.reason << "\"";
  }
}

TEST(MqttSubscribeTest, Vectors) {
  std::string error;
  // MQTT 3.1.1: packet id 1, "a/#" at QoS 1.
  const std::string v311 = bytes({0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 'a', '/', '#', 0x01});
  const auto s = parse_subscribe(v311, kMqtt311, error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->packet_id, 1);
  ASSERT_EQ(s->entries.size(), 1u);
  EXPECT_EQ(s->entries[0].filter, "a/#");
  EXPECT_EQ(s->entries[0].options, 1);
  EXPECT_EQ(hex(encode_subscribe(*s, kMqtt311)), hex(v311));

  // MQTT 5: packet id 2, "a" at QoS 1 with No Local, Retain As Published, Retain Handling 2.
  const std::string v5 = bytes({0x82, 0x07, 0x00, 0x02, 0x00, 0x00, 0x01, 'a', 0x2D});
  const auto t = parse_subscribe(v5, kMqtt5, error);
  ASSERT_TRUE(t) << error;
  EXPECT_EQ(t->entries[0].options, 0x2D);
  EXPECT_EQ(hex(encode_subscribe(*t, kMqtt5)), hex(v5));
  // The same options byte is reserved-bits-set in 3.1.1.
  EXPECT_FALSE(
      parse_subscribe(bytes({0x82, 0x06, 0x00, 0x02, 0x00, 0x01, 'a', 0x2D}), kMqtt311, error));
}

TEST(MqttSubscribeTest, RoundTripWithPropertiesAndSeveralFilters) {
  SubscribePacket s;
  s.packet_id = 65535;
  append_property(s.properties, 0x0B, 268435455);  // Subscription Identifier, largest
  s.entries = {{"sensors/+/temp", 0x02}, {"$SYS/#", 0x1C}, {"", 0x00}};
  std::string error;
  const auto back = parse_subscribe(encode_subscribe(s, kMqtt5), kMqtt5, error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(*back, s);
}

TEST(MqttSubscribeTest, Malformed) {
  expect_refused(
      {
          {bytes({0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00}), kMqtt311, "flags must be 2"},
          {bytes({0x82, 0x02, 0x00, 0x01}), kMqtt311, "without topic filters"},
          {bytes({0x82, 0x03, 0x00, 0x01, 0x00}), kMqtt5, "without topic filters"},
          {bytes({0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 'a', 0x00}), kMqtt311, "packet id 0"},
          {bytes({0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x04}), kMqtt311, "reserved bits"},
          {bytes({0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x40}), kMqtt5, "reserved bits"},
          {bytes({0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x03}), kMqtt311, "QoS 3"},
          {bytes({0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30}), kMqtt5,
           "retain handling 3"},
          {bytes({0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 'a'}), kMqtt311, "without its options"},
          {bytes({0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0xFF, 0x00}), kMqtt311, "not a valid UTF-8"},
          {bytes({0x82, 0x06, 0x00, 0x01, 0x00, 0x05, 'a', 0x00}), kMqtt311, "runs past"},
          {bytes({0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, 'a', 0x00}), kMqtt5,
           "must not be 0"},
          {bytes({0x82, 0x0A, 0x00, 0x01, 0x03, 0x23, 0x00, 0x01, 0x00, 0x01, 'a', 0x00}), kMqtt5,
           "not allowed"},
      },
      parse_subscribe);
}

TEST(MqttSubackTest, Vectors) {
  std::string error;
  const std::string v311 = bytes({0x90, 0x04, 0x00, 0x01, 0x01, 0x80});
  const auto a = parse_suback(v311, kMqtt311, error);
  ASSERT_TRUE(a) << error;
  EXPECT_EQ(a->packet_id, 1);
  EXPECT_EQ(a->codes, (std::vector<std::uint8_t>{0x01, 0x80}));
  EXPECT_EQ(hex(encode_suback(*a, kMqtt311)), hex(v311));

  const std::string v5 = bytes({0x90, 0x05, 0x00, 0x02, 0x00, 0x00, 0x87});
  const auto b = parse_suback(v5, kMqtt5, error);
  ASSERT_TRUE(b) << error;
  EXPECT_EQ(b->codes, (std::vector<std::uint8_t>{0x00, 0x87}));
  EXPECT_EQ(hex(encode_suback(*b, kMqtt5)), hex(v5));
  expect_refused({{bytes({0x90, 0x02, 0x00, 0x01}), kMqtt311, "without reason codes"},
                  {bytes({0x92, 0x03, 0x00, 0x01, 0x00}), kMqtt311, "flags must be 0"}},
                 parse_suback);
}

TEST(MqttUnsubscribeTest, Vectors) {
  std::string error;
  const std::string v311 = bytes({0xA2, 0x05, 0x00, 0x03, 0x00, 0x01, 'a'});
  const auto u = parse_unsubscribe(v311, kMqtt311, error);
  ASSERT_TRUE(u) << error;
  EXPECT_EQ(u->packet_id, 3);
  EXPECT_EQ(u->filters, std::vector<std::string>{"a"});
  EXPECT_EQ(hex(encode_unsubscribe(*u, kMqtt311)), hex(v311));

  const std::string v5 = bytes({0xA2, 0x06, 0x00, 0x03, 0x00, 0x00, 0x01, 'a'});
  const auto w = parse_unsubscribe(v5, kMqtt5, error);
  ASSERT_TRUE(w) << error;
  EXPECT_EQ(hex(encode_unsubscribe(*w, kMqtt5)), hex(v5));
  expect_refused({{bytes({0xA0, 0x05, 0x00, 0x03, 0x00, 0x01, 'a'}), kMqtt311, "flags must be 2"},
                  {bytes({0xA2, 0x02, 0x00, 0x03}), kMqtt311, "without topic filters"},
                  {bytes({0xA2, 0x04, 0x00, 0x03, 0x00, 0x02}), kMqtt311, "runs past"}},
                 parse_unsubscribe);
}

TEST(MqttUnsubackTest, Vectors) {
  std::string error;
  const std::string v311 = bytes({0xB0, 0x02, 0x00, 0x03});
  const auto a = parse_unsuback(v311, kMqtt311, error);
  ASSERT_TRUE(a) << error;
  EXPECT_EQ(a->packet_id, 3);
  EXPECT_TRUE(a->codes.empty());
  EXPECT_EQ(hex(encode_unsuback(*a, kMqtt311)), hex(v311));

  const std::string v5 = bytes({0xB0, 0x04, 0x00, 0x03, 0x00, 0x11});
  const auto b = parse_unsuback(v5, kMqtt5, error);
  ASSERT_TRUE(b) << error;
  EXPECT_EQ(b->codes, std::vector<std::uint8_t>{0x11});
  EXPECT_EQ(hex(encode_unsuback(*b, kMqtt5)), hex(v5));
  expect_refused({{bytes({0xB0, 0x03, 0x00, 0x03, 0x00}), kMqtt311, "trailing bytes"},
                  {bytes({0xB0, 0x03, 0x00, 0x03, 0x00}), kMqtt5, "without reason codes"}},
                 parse_unsuback);
}

TEST(MqttAckTest, Vectors) {
  std::string error;
  const std::pair<PacketType, int> kinds[] = {{PacketType::kPuback, 0x40},
                                              {PacketType::kPubrec, 0x50},
                                              {PacketType::kPubrel, 0x62},
                                              {PacketType::kPubcomp, 0x70}};
  for (const auto& [type, first] : kinds) {
    const std::string v = bytes({first, 0x02, 0x00, 0x07});
    for (std::uint8_t version : {kMqtt311, kMqtt5}) {
      const auto a = parse_ack(v, version, error);
      ASSERT_TRUE(a) << error;
      EXPECT_EQ(a->type, type);
      EXPECT_EQ(a->packet_id, 7);
      EXPECT_EQ(a->code, 0);
      EXPECT_EQ(hex(encode_ack(*a, version)), hex(v));
    }
  }
  // MQTT 5: a reason code alone (remaining length 3), then with a Reason String.
  const std::string denied = bytes({0x40, 0x03, 0x00, 0x07, 0x87});
  const auto d = parse_ack(denied, kMqtt5, error);
  ASSERT_TRUE(d) << error;
  EXPECT_EQ(d->code, reason::kNotAuthorized);
  EXPECT_EQ(hex(encode_ack(*d, kMqtt5)), hex(denied));
  AckPacket with_reason{PacketType::kPubrec, 7, reason::kNotAuthorized, {}};
  append_property(with_reason.properties, property::kReasonString, "no");
  const std::string expected =
      bytes({0x50, 0x09, 0x00, 0x07, 0x87, 0x05, 0x1F, 0x00, 0x02, 'n', 'o'});
  EXPECT_EQ(hex(encode_ack(with_reason, kMqtt5)), hex(expected));
  EXPECT_EQ(parse_ack(expected, kMqtt5, error), with_reason) << error;
  // 3.1.1 has no reason code: the shortest form whatever the code.
  EXPECT_EQ(hex(encode_ack(*d, kMqtt311)), hex(bytes({0x40, 0x02, 0x00, 0x07})));
}

TEST(MqttAckTest, Malformed) {
  expect_refused(
      {
          {bytes({0x60, 0x02, 0x00, 0x07}), kMqtt311, "flags must be 2"},
          {bytes({0x42, 0x02, 0x00, 0x07}), kMqtt311, "flags must be 0"},
          {bytes({0x40, 0x01, 0x00}), kMqtt311, "too short"},
          {bytes({0x40, 0x02, 0x00, 0x00}), kMqtt311, "packet id 0"},
          {bytes({0x40, 0x03, 0x00, 0x07, 0x87}), kMqtt311, "trailing bytes"},
          {bytes({0x40, 0x05, 0x00, 0x07, 0x87, 0x01, 0x23}), kMqtt5, "runs past"},
          {bytes({0x40, 0x07, 0x00, 0x07, 0x87, 0x03, 0x23, 0x00, 0x01}), kMqtt5, "not allowed"},
          {bytes({0x30, 0x02, 0x00, 0x07}), kMqtt311, "not a PUBACK"},
      },
      parse_ack);
}

TEST(MqttDisconnectTest, Vectors) {
  EXPECT_EQ(hex(encode_disconnect(kMqtt311, reason::kPacketTooLarge, "ignored")),
            hex(bytes({0xE0, 0x00})));
  EXPECT_EQ(hex(encode_disconnect(kMqtt5, reason::kSuccess)), hex(bytes({0xE0, 0x00})));
  EXPECT_EQ(hex(encode_disconnect(kMqtt5, reason::kPacketTooLarge)),
            hex(bytes({0xE0, 0x01, 0x95})));
  const std::string with_reason = encode_disconnect(kMqtt5, reason::kPacketTooLarge, "big");
  EXPECT_EQ(hex(with_reason),
            hex(bytes({0xE0, 0x08, 0x95, 0x06, 0x1F, 0x00, 0x03, 'b', 'i', 'g'})));
  std::string error;
  EXPECT_EQ(parse_disconnect(with_reason, kMqtt5, error), reason::kPacketTooLarge) << error;
  EXPECT_EQ(parse_disconnect(bytes({0xE0, 0x00}), kMqtt5, error), reason::kSuccess);
  EXPECT_EQ(parse_disconnect(bytes({0xE0, 0x01, 0x8B}), kMqtt5, error), 0x8B);
  EXPECT_EQ(parse_disconnect(bytes({0xE0, 0x00}), kMqtt311, error), reason::kSuccess);
  expect_refused({{bytes({0xE0, 0x01, 0x00}), kMqtt311, "trailing bytes"},
                  {bytes({0xE1, 0x00}), kMqtt5, "flags must be 0"},
                  {bytes({0xE0, 0x04, 0x00, 0x02, 0x13, 0x00}), kMqtt5, "runs past"},
                  // CONNACK-only codes, which mqtt.js would take as a fatal error.
                  {bytes({0xE0, 0x01, 0x88}), kMqtt5, "is not one"},
                  {bytes({0xE0, 0x01, 0x8C}), kMqtt5, "is not one"}},
                 parse_disconnect);
}

TEST(MqttDisconnectTest, ReasonCodesAreTheSpecsTable) {
  int valid = 0;
  for (int code = 0; code < 256; ++code) valid += is_disconnect_reason(code) ? 1 : 0;
  EXPECT_EQ(valid, 29);  // MQTT 5.0, table 3-10
  for (const std::uint8_t code :
       {reason::kSuccess, reason::kMalformedPacket, reason::kProtocolError, reason::kNotAuthorized,
        reason::kServerShuttingDown, reason::kTopicAliasInvalid, reason::kPacketTooLarge,
        reason::kMessageRateTooHigh}) {
    EXPECT_TRUE(is_disconnect_reason(code)) << int(code);
  }
  EXPECT_FALSE(is_disconnect_reason(reason::kServerUnavailable));
  EXPECT_FALSE(is_disconnect_reason(reason::kBadUserNameOrPassword));
  EXPECT_FALSE(is_disconnect_reason(0x01));
}

TEST(MqttDisconnectTest, LongReasonIsCutAtACharacterAndStaysValid) {
  std::string long_reason;
  for (int i = 0; i < 1000; ++i) long_reason += "é";  // 2000 bytes of two-byte characters
  long_reason.insert(0, "x");                         // so that byte 512 is a continuation byte
  const std::string packet = encode_disconnect(kMqtt5, reason::kProtocolError, long_reason);
  EXPECT_LE(packet.size(), 600u);
  std::string error;
  ASSERT_EQ(parse_disconnect(packet, kMqtt5, error), reason::kProtocolError) << error;
  // The Reason String: code, property length (2 bytes), then the property.
  const auto reason_string = find_property(packet.substr(6), property::kReasonString);
  ASSERT_TRUE(reason_string);
  EXPECT_GT(reason_string->text.size(), 500u);
  // Bytes that are not UTF-8 are replaced rather than sent malformed.
  const std::string bad = encode_disconnect(kMqtt5, reason::kProtocolError, "a\xff\0b"s);
  EXPECT_EQ(parse_disconnect(bad, kMqtt5, error), reason::kProtocolError) << error;
  EXPECT_NE(bad.find("a??b"), std::string::npos) << hex(bad);
}

}  // namespace
}  // namespace wsbridge::mqtt::wire
