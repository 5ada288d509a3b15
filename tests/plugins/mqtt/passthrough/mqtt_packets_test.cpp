// CONNECT, CONNACK, PUBLISH and properties (plugins/mqtt/passthrough/mqtt_packets.cpp,
// mqtt_properties.cpp): byte-exact vectors written by hand from the MQTT 3.1.1 and 5.0 specs,
// round trips, and malformed packets refused with a reason.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "passthrough/mqtt_packets.hpp"
#include "wire_bytes.hpp"

namespace wsbridge::mqtt::wire {
namespace {

using test::bytes;
using test::hex;

// MQTT 3.1.1 CONNECT: client "abc", clean session, keep alive 60, user "u", password "p".
const std::string kConnect311 =
    bytes({0x10, 0x15, 0x00, 0x04, 'M', 'Q',  'T',  'T', 0x04, 0xC2, 0x00, 0x3C,
           0x00, 0x03, 'a',  'b',  'c', 0x00, 0x01, 'u', 0x00, 0x01, 'p'});
// MQTT 5 CONNECT: client "abc", clean start, keep alive 60, Session Expiry Interval 30, a will
// (QoS 1, retained, no will properties) on "w" with payload "x".
const std::string kConnect5 =
    bytes({0x10, 0x1C, 0x00, 0x04, 'M',  'Q', 'T', 'T', 0x05, 0x2E, 0x00, 0x3C, 0x05, 0x11, 0x00,
           0x00, 0x00, 0x1E, 0x00, 0x03, 'a', 'b', 'c', 0x00, 0x00, 0x01, 'w',  0x00, 0x01, 'x'});
// MQTT 3.1 CONNECT: client "c", clean session, keep alive 10.
const std::string kConnect31 = bytes({0x10, 0x0F, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03,
                                      0x02, 0x00, 0x0A, 0x00, 0x01, 'c'});

TEST(MqttConnectTest, Mqtt311Vector) {
  std::string error;
  const auto connect = parse_connect(kConnect311, error);
  ASSERT_TRUE(connect) << error;
  EXPECT_EQ(connect->version, kMqtt311);
  EXPECT_TRUE(connect->clean_start);
  EXPECT_EQ(connect->keepalive, 60);
  EXPECT_EQ(connect->client_id, "abc");
  EXPECT_FALSE(connect->will);
  EXPECT_EQ(connect->username, "u");
  EXPECT_EQ(connect->password, "p");
  EXPECT_EQ(hex(encode_connect(*connect)), hex(kConnect311));
}

TEST(MqttConnectTest, Mqtt5Vector) {
  std::string error;
  const auto connect = parse_connect(kConnect5, error);
  ASSERT_TRUE(connect) << error;
  EXPECT_EQ(connect->version, kMqtt5);
  EXPECT_EQ(connect->properties, bytes({0x11, 0x00, 0x00, 0x00, 0x1E}));
  const auto expiry = find_property(connect->properties, property::kSessionExpiryInterval);
  ASSERT_TRUE(expiry);
  EXPECT_EQ(expiry->number, 30u);
  ASSERT_TRUE(connect->will);
  EXPECT_EQ(connect->will->qos, 1);
  EXPECT_TRUE(connect->will->retain);
  EXPECT_EQ(connect->will->topic, "w");
  EXPECT_EQ(connect->will->payload, "x");
  EXPECT_FALSE(connect->username);
  EXPECT_EQ(hex(encode_connect(*connect)), hex(kConnect5));
}

TEST(MqttConnectTest, Mqtt31Vector) {
  std::string error;
  const auto connect = parse_connect(kConnect31, error);
  ASSERT_TRUE(connect) << error;
  EXPECT_EQ(connect->version, kMqtt31);
  EXPECT_EQ(connect->keepalive, 10);
  EXPECT_EQ(hex(encode_connect(*connect)), hex(kConnect31));
}

TEST(MqttConnectTest, RoundTripWithEverything) {
  for (std::uint8_t version : {kMqtt31, kMqtt311, kMqtt5}) {
    ConnectPacket connect;
    connect.version = version;
    connect.clean_start = false;
    connect.keepalive = 65535;
    connect.client_id = "ü-client";
    if (version == kMqtt5) append_property(connect.properties, property::kReceiveMaximum, 10);
    connect.will = Will{};
    connect.will->topic = "users/ü/will";
    connect.will->payload = std::string("\0\xff", 2);
    connect.will->qos = 2;
    if (version == kMqtt5) append_property(connect.will->properties, 0x18, 5);  // Will Delay
    connect.username = "";
    connect.password = std::string(300, '\xfe');
    std::string error;
    const auto back = parse_connect(encode_connect(connect), error);
    ASSERT_TRUE(back) << error;
    EXPECT_EQ(*back, connect) << int(version);
  }
}

TEST(MqttConnectTest, PasswordWithoutUserNameOnlyInMqtt5) {
  ConnectPacket connect;
  connect.version = kMqtt5;
  connect.client_id = "x";
  connect.password = "token";
  std::string error;
  EXPECT_TRUE(parse_connect(encode_connect(connect), error)) << error;
  connect.version = kMqtt311;
  EXPECT_FALSE(parse_connect(encode_connect(connect), error));
  EXPECT_EQ(error, "password without a user name");
}

struct Malformed {
  std::string packet;
  std::string reason;  // a part of the error
};

TEST(MqttConnectTest, MalformedWithReasons) {
  std::string c = kConnect311;
  auto with = [&](std::size_t at, int value) {
    std::string p = c;
    p[at] = static_cast<char>(value);
    return p;
  };
  const std::vector<Malformed> cases = {
      {with(8, 0x03), "unsupported protocol \"MQTT\" level 3"},
      {with(8, 0x06), "unsupported protocol"},
      {with(4, 'X'), "unsupported protocol \"XQTT\" level 4"},
      {bytes({0x10, 0x0C, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x04, 0x02, 0x00, 0x0A}),
       "unsupported protocol \"MQIsdp\" level 4"},
      {with(0, 0x11), "fixed header flags"},
      {with(9, 0xC3), "reserved flag"},
      {with(9, 0xCA), "will QoS or retain set without a will"},  // will QoS 1, no will
      {with(9, 0xE2), "will QoS or retain set without a will"},  // will retain, no will
      {with(9, 0x42), "password without a user name"},
      {with(9, 0xC2 | 0x04 | 0x18), "will QoS 3"},
      {with(15, 0xFF), "client id is not a valid UTF-8 string"},
      {with(15, 0x00), "client id is not a valid UTF-8 string"},  // NUL
      {with(19, 0xC0), "user name is not a valid UTF-8 string"},
      {c.substr(0, c.size() - 1), "password runs past the packet"},
      {bytes({0x10, 0x02, 0x00, 0x04}), "too short"},
      {bytes({0x10, 0x16}) + c.substr(2) + "!", "trailing bytes"},
      // Will topic with a wildcard (MQTT 3.1.1: flags 0x06, will topic "a/#").
      {bytes({0x10, 0x14, 0x00, 0x04, 'M',  'Q',  'T', 'T', 0x04, 0x06, 0x00,
              0x00, 0x00, 0x01, 'c',  0x00, 0x03, 'a', '/', '#',  0x00, 0x00}),
       "will topic must not contain wildcards"},
      // MQTT 5: a property only CONNACK may carry (Assigned Client Identifier).
      {bytes({0x10, 0x12, 0x00, 0x04, 'M',  'Q',  'T', 'T',  0x05, 0x02,
              0x00, 0x00, 0x04, 0x12, 0x00, 0x01, 'z', 0x00, 0x01, 'c'}),
       "property 18 is not allowed"},
      // MQTT 5: an unknown property identifier.
      {bytes({0x10, 0x0F, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x01, 0x04, 0x00,
              0x01, 'c'}),
       "unknown property identifier 4"},
  };
  for (const auto& m : cases) {
    std::string error;
    EXPECT_FALSE(parse_connect(m.packet, error)) << hex(m.packet);
    EXPECT_NE(error.find(m.reason), std::string::npos)
        << hex(m.packet) << ": \"" << error << "\", expected \"" << m.reason << "\"";
  }
}

TEST(MqttConnackTest, Vectors) {
  std::string error;
  const auto v311 = parse_connack(bytes({0x20, 0x02, 0x01, 0x00}), kMqtt311, error);
  ASSERT_TRUE(v311) << error;
  EXPECT_TRUE(v311->session_present);
  EXPECT_EQ(v311->code, 0);
  EXPECT_EQ(hex(encode_connack(*v311, kMqtt311)), hex(bytes({0x20, 0x02, 0x01, 0x00})));

  // MQTT 5 with Topic Alias Maximum 10, then without it (what the pass-through forwards).
  const std::string v5_bytes = bytes({0x20, 0x06, 0x00, 0x00, 0x03, 0x22, 0x00, 0x0A});
  auto v5 = parse_connack(v5_bytes, kMqtt5, error);
  ASSERT_TRUE(v5) << error;
  EXPECT_EQ(find_property(v5->properties, property::kTopicAliasMaximum)->number, 10u);
  EXPECT_EQ(hex(encode_connack(*v5, kMqtt5)), hex(v5_bytes));
  v5->properties = without_property(v5->properties, property::kTopicAliasMaximum);
  EXPECT_EQ(hex(encode_connack(*v5, kMqtt5)), hex(bytes({0x20, 0x03, 0x00, 0x00, 0x00})));
  ConnackPacket refused{false, reason::kUnsupportedProtocolVersion, {}};
  EXPECT_EQ(hex(encode_connack(refused, kMqtt5)), hex(bytes({0x20, 0x03, 0x00, 0x84, 0x00})));
}

TEST(MqttConnackTest, Malformed) {
  const std::vector<std::pair<Malformed, std::uint8_t>> cases = {
      {{bytes({0x20, 0x01, 0x00}), "too short"}, kMqtt311},
      {{bytes({0x20, 0x02, 0x02, 0x00}), "reserved flags"}, kMqtt311},
      {{bytes({0x21, 0x02, 0x00, 0x00}), "fixed header flags"}, kMqtt311},
      {{bytes({0x20, 0x03, 0x00, 0x00, 0x00}), "trailing bytes"}, kMqtt311},
      {{bytes({0x20, 0x05, 0x00, 0x00, 0x02, 0x23, 0x00}), "runs past"}, kMqtt5},
      {{bytes({0x20, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01}), "not allowed"}, kMqtt5},
  };
  for (const auto& [m, version] : cases) {
    std::string error;
    EXPECT_FALSE(parse_connack(m.packet, version, error)) << hex(m.packet);
    EXPECT_NE(error.find(m.reason), std::string::npos) << hex(m.packet) << ": " << error;
  }
}

TEST(MqttPublishTest, Vectors) {
  std::string error;
  // MQTT 3.1.1: QoS 1 on "a/b", packet id 10, payload "hi".
  const std::string v311 = bytes({0x32, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i'});
  const auto p = parse_publish(v311, kMqtt311, error);
  ASSERT_TRUE(p) << error;
  EXPECT_EQ(p->qos, 1);
  EXPECT_FALSE(p->retain);
  EXPECT_FALSE(p->dup);
  EXPECT_EQ(p->topic, "a/b");
  EXPECT_EQ(p->packet_id, 10);
  EXPECT_EQ(p->payload, "hi");
  EXPECT_EQ(hex(encode_publish(*p, kMqtt311)), hex(v311));

  // MQTT 5: QoS 0, retained, on "t" with Topic Alias 1, payload "x".
  const std::string v5 = bytes({0x31, 0x08, 0x00, 0x01, 't', 0x03, 0x23, 0x00, 0x01, 'x'});
  const auto q = parse_publish(v5, kMqtt5, error);
  ASSERT_TRUE(q) << error;
  EXPECT_TRUE(q->retain);
  EXPECT_EQ(q->topic, "t");
  EXPECT_EQ(find_property(q->properties, property::kTopicAlias)->number, 1u);
  EXPECT_EQ(q->payload, "x");
  EXPECT_EQ(hex(encode_publish(*q, kMqtt5)), hex(v5));

  // MQTT 5: an empty topic standing for Topic Alias 1; QoS 2, DUP.
  const std::string alias =
      bytes({0x3C, 0x09, 0x00, 0x00, 0x00, 0x05, 0x03, 0x23, 0x00, 0x01, 'y'});
  const auto r = parse_publish(alias, kMqtt5, error);
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->topic, "");
  EXPECT_TRUE(r->dup);
  EXPECT_EQ(r->qos, 2);
  EXPECT_EQ(hex(encode_publish(*r, kMqtt5)), hex(alias));
}

TEST(MqttPublishTest, Malformed) {
  const std::vector<std::pair<Malformed, std::uint8_t>> cases = {
      {{bytes({0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01}), "QoS 3"}, kMqtt311},
      {{bytes({0x38, 0x03, 0x00, 0x01, 't'}), "DUP set with QoS 0"}, kMqtt311},
      {{bytes({0x30, 0x03, 0x00, 0x01, '#'}), "must not contain wildcards"}, kMqtt311},
      {{bytes({0x30, 0x02, 0x00, 0x00}), "must not be empty"}, kMqtt311},
      {{bytes({0x30, 0x03, 0x00, 0x00, 0x00}), "empty topic and no Topic Alias"}, kMqtt5},
      {{bytes({0x30, 0x03, 0x00, 0x02, 't'}), "topic runs past"}, kMqtt311},
      {{bytes({0x32, 0x04, 0x00, 0x01, 't', 0x00}), "too short for its packet id"}, kMqtt311},
      {{bytes({0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00}), "packet id 0"}, kMqtt311},
      {{bytes({0x30, 0x07, 0x00, 0x01, 't', 0x03, 0x23, 0x00, 0x00}), "must not be 0"}, kMqtt5},
      {{bytes({0x30, 0x06, 0x00, 0x01, 't', 0x02, 0x21, 0x00}), "runs past"}, kMqtt5},
      {{bytes({0x30, 0x07, 0x00, 0x01, 't', 0x03, 0x21, 0x00, 0x01}), "not allowed"}, kMqtt5},
      {{bytes({0x30, 0x08, 0x00, 0x01, 't', 0x04, 0x03, 0x00, 0x01, 0xFF}), "not a valid UTF-8"},
       kMqtt5},
      // A property length of 0 in two bytes [MQTT-1.5.5-1].
      {{bytes({0x30, 0x05, 0x00, 0x01, 't', 0x80, 0x00}), "malformed property length"}, kMqtt5},
  };
  for (const auto& [m, version] : cases) {
    std::string error;
    EXPECT_FALSE(parse_publish(m.packet, version, error)) << hex(m.packet);
    EXPECT_NE(error.find(m.reason), std::string::npos) << hex(m.packet) << ": " << error;
  }
}

TEST(MqttPropertiesTest, EveryTypeParsesAndEdits) {
  std::string block;
  append_property(block, 0x01, 1);                              // byte
  append_property(block, property::kReceiveMaximum, 300);       // u16
  append_property(block, property::kMaximumPacketSize, 70000);  // u32
  append_property(block, 0x0B, 200);                            // varint (2 bytes)
  append_property(block, property::kReasonString, "ok");        // string
  append_property(block, 0x09, std::string("\0\1", 2));         // binary
  block += bytes({0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v'});     // string pair
  EXPECT_EQ(hex(block), hex(bytes({0x01, 0x01, 0x21, 0x01, 0x2C, 0x27, 0x00, 0x01, 0x11, 0x70,
                                   0x0B, 0xC8, 0x01, 0x1F, 0x00, 0x02, 'o',  'k',  0x09, 0x00,
                                   0x02, 0x00, 0x01, 0x26, 0x00, 0x01, 'k',  0x00, 0x01, 'v'})));
  std::string error;
  const auto parsed = parse_properties(block, error);
  ASSERT_TRUE(parsed) << error;
  ASSERT_EQ(parsed->size(), 7u);
  EXPECT_EQ((*parsed)[1].number, 300u);
  EXPECT_EQ((*parsed)[2].number, 70000u);
  EXPECT_EQ((*parsed)[3].number, 200u);
  EXPECT_EQ((*parsed)[4].text, "ok");
  EXPECT_EQ((*parsed)[5].text, std::string("\0\1", 2));
  EXPECT_EQ((*parsed)[6].text, "k");
  EXPECT_EQ((*parsed)[6].second, "v");
  const std::string without = without_property(block, property::kMaximumPacketSize);
  EXPECT_EQ(without.size(), block.size() - 5);
  EXPECT_FALSE(find_property(without, property::kMaximumPacketSize));
  EXPECT_EQ(find_property(without, property::kReasonString)->text, "ok");
  EXPECT_FALSE(find_property(block, property::kTopicAlias));
}

TEST(MqttPropertiesTest, MalformedBlocks) {
  const std::vector<Malformed> cases = {
      {bytes({0x00}), "unknown property identifier 0"},
      {bytes({0x2B, 0x00}), "unknown property identifier 43"},
      {bytes({0x21, 0x00}), "runs past"},
      {bytes({0x0B, 0x80, 0x80, 0x80, 0x80, 0x01}), "not a variable byte integer"},  // 5 bytes
      {bytes({0x0B, 0x80}), "not a variable byte integer"},  // runs past the block
      // 1 in two bytes, and 0 in four: one value has one encoding [MQTT-1.5.5-1].
      {bytes({0x0B, 0x81, 0x00}), "not a variable byte integer"},
      {bytes({0x0B, 0x80, 0x80, 0x80, 0x00}), "not a variable byte integer"},
      {bytes({0x1F, 0x00, 0x01, 0x00}), "not a valid UTF-8"},
      {bytes({0x26, 0x00, 0x01, 'k', 0x00, 0x01, 0xC3}), "not a valid UTF-8"},
      {bytes({0x26, 0x00, 0x01, 'k'}), "runs past"},
  };
  for (const auto& m : cases) {
    std::string error;
    EXPECT_FALSE(parse_properties(m.packet, error)) << hex(m.packet);
    EXPECT_NE(error.find(m.reason), std::string::npos) << hex(m.packet) << ": " << error;
  }
}

}  // namespace
}  // namespace wsbridge::mqtt::wire
