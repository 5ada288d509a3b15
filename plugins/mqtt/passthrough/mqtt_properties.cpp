// MQTT 5 properties (section 2.2.2): the property table, block parsing and editing.
#include <array>
#include <utility>

#include "passthrough/mqtt_packets.hpp"
#include "passthrough/mqtt_wire_detail.hpp"
#include "topic.hpp"

namespace wsbridge::mqtt::wire {

namespace {

using detail::context_bit;
using detail::Cursor;

enum class Kind : std::uint8_t { kNone, kByte, kU16, kU32, kVarint, kString, kBinary, kPair };

struct Spec {
  Kind kind = Kind::kNone;
  std::uint32_t contexts = 0;  // context_bit() of the packets (and Will) that may carry it
};

constexpr std::uint32_t bits(std::initializer_list<PacketType> types, bool will = false) {
  std::uint32_t out = will ? context_bit(detail::kWillContext) : 0;
  for (PacketType t : types) out |= context_bit(static_cast<std::uint32_t>(t));
  return out;
}

using P = PacketType;

// MQTT 5 table 2-4: every property identifier, its type and where it may appear.
constexpr std::array<Spec, 0x2B> kTable = [] {
  std::array<Spec, 0x2B> t{};
  t[0x01] = {Kind::kByte, bits({P::kPublish}, true)};             // Payload Format Indicator
  t[0x02] = {Kind::kU32, bits({P::kPublish}, true)};              // Message Expiry Interval
  t[0x03] = {Kind::kString, bits({P::kPublish}, true)};           // Content Type
  t[0x08] = {Kind::kString, bits({P::kPublish}, true)};           // Response Topic
  t[0x09] = {Kind::kBinary, bits({P::kPublish}, true)};           // Correlation Data
  t[0x0B] = {Kind::kVarint, bits({P::kPublish, P::kSubscribe})};  // Subscription Identifier
  t[0x11] = {Kind::kU32, bits({P::kConnect, P::kConnack, P::kDisconnect})};
  t[0x12] = {Kind::kString, bits({P::kConnack})};                         // Assigned Client Id
  t[0x13] = {Kind::kU16, bits({P::kConnack})};                            // Server Keep Alive
  t[0x15] = {Kind::kString, bits({P::kConnect, P::kConnack, P::kAuth})};  // Auth Method
  t[0x16] = {Kind::kBinary, bits({P::kConnect, P::kConnack, P::kAuth})};  // Auth Data
  t[0x17] = {Kind::kByte, bits({P::kConnect})};                    // Request Problem Information
  t[0x18] = {Kind::kU32, bits({}, true)};                          // Will Delay Interval
  t[0x19] = {Kind::kByte, bits({P::kConnect})};                    // Request Response Information
  t[0x1A] = {Kind::kString, bits({P::kConnack})};                  // Response Information
  t[0x1C] = {Kind::kString, bits({P::kConnack, P::kDisconnect})};  // Server Reference
  t[0x1F] = {Kind::kString, bits({P::kConnack, P::kPuback, P::kPubrec, P::kPubrel, P::kPubcomp,
                                  P::kSuback, P::kUnsuback, P::kDisconnect, P::kAuth})};
  t[0x21] = {Kind::kU16, bits({P::kConnect, P::kConnack})};  // Receive Maximum
  t[0x22] = {Kind::kU16, bits({P::kConnect, P::kConnack})};  // Topic Alias Maximum
  t[0x23] = {Kind::kU16, bits({P::kPublish})};               // Topic Alias
  t[0x24] = {Kind::kByte, bits({P::kConnack})};              // Maximum QoS
  t[0x25] = {Kind::kByte, bits({P::kConnack})};              // Retain Available
  t[0x26] = {Kind::kPair, bits({P::kConnect, P::kConnack, P::kPublish, P::kPuback, P::kPubrec,
                                P::kPubrel, P::kPubcomp, P::kSubscribe, P::kSuback, P::kUnsubscribe,
                                P::kUnsuback, P::kDisconnect, P::kAuth},
                               true)};                       // User Property
  t[0x27] = {Kind::kU32, bits({P::kConnect, P::kConnack})};  // Maximum Packet Size
  t[0x28] = {Kind::kByte, bits({P::kConnack})};              // Wildcard Subscription Available
  t[0x29] = {Kind::kByte, bits({P::kConnack})};              // Subscription Identifier Available
  t[0x2A] = {Kind::kByte, bits({P::kConnack})};              // Shared Subscription Available
  return t;
}();

Kind kind_of(std::uint8_t id) {
  return id < kTable.size() ? kTable[id].kind : Kind::kNone;
}

// Reads one property from `in`; `raw` receives its bytes (identifier included).
bool read_one(Cursor& in, Property& out, std::string_view& raw, std::string& error) {
  const std::string_view start = in.rest();
  std::uint8_t id = 0;
  in.u8(id);  // the caller checked the block is not empty
  out = Property{};
  out.id = id;
  bool ok = true;
  switch (kind_of(id)) {
    case Kind::kNone:
      error = "unknown property identifier " + std::to_string(id);
      return false;
    case Kind::kByte: {
      std::uint8_t v = 0;
      ok = in.u8(v);
      out.number = v;
      break;
    }
    case Kind::kU16: {
      std::uint16_t v = 0;
      ok = in.u16(v);
      out.number = v;
      break;
    }
    case Kind::kU32:
      ok = in.u32(out.number);
      break;
    case Kind::kVarint:
      if (!in.varint(out.number)) {
        error = "property " + std::to_string(id) +
                " is not a variable byte integer (at most 4 bytes, in its shortest encoding, "
                "within the property block)";
        return false;
      }
      break;
    case Kind::kString:
    case Kind::kBinary:
      ok = in.prefixed(out.text);
      break;
    case Kind::kPair:
      ok = in.prefixed(out.text) && in.prefixed(out.second);
      break;
  }
  if (!ok) {
    error = "property " + std::to_string(id) + " runs past the property block";
    return false;
  }
  const Kind kind = kind_of(id);
  if ((kind == Kind::kString || kind == Kind::kPair) &&
      (!detail::valid_mqtt_string(out.text) || !detail::valid_mqtt_string(out.second))) {
    error = "property " + std::to_string(id) +
            " is not a valid UTF-8 string without control characters or noncharacters";
    return false;
  }
  raw = start.substr(0, start.size() - in.size());
  return true;
}

// Walks a block, calling `each(property, raw bytes)` for every property; false (and `error`) when
// the block is malformed or `each` returns false.
template <typename Each>
bool walk(std::string_view block, std::string& error, Each&& each) {
  Cursor in(block);
  Property p;
  std::string_view raw;
  while (!in.empty()) {
    if (!read_one(in, p, raw, error)) return false;
    if (!each(p, raw)) return false;
  }
  return true;
}

}  // namespace

bool detail::valid_mqtt_string(std::string_view s) {
  return is_valid_mqtt_string(s);
}

bool detail::read_properties(Cursor& in, std::uint32_t context, std::string_view& block,
                             std::string& error) {
  std::uint32_t length = 0;
  if (!in.varint(length)) {
    error = "malformed property length";
    return false;
  }
  if (!in.bytes(length, block)) {
    error = "property length runs past the packet";
    return false;
  }
  std::array<bool, kTable.size()> seen{};
  return walk(block, error, [&](const Property& p, std::string_view) {
    if ((kTable[p.id].contexts & context_bit(context)) == 0) {
      error = "property " + std::to_string(p.id) + " is not allowed in this packet";
      return false;
    }
    // Section 2.2.2.2: a property may appear once, except User Property, and Subscription
    // Identifier in a PUBLISH (one for each subscription it matched).
    const bool repeats =
        p.id == 0x26 || (p.id == 0x0B && context == static_cast<std::uint32_t>(P::kPublish));
    if (std::exchange(seen[p.id], true) && !repeats) {
      error = "property " + std::to_string(p.id) + " appears twice";
      return false;
    }
    // Every one-byte property is 0 or 1 (a Protocol Error otherwise: 3.1.2.11.7, 3.1.2.11.8,
    // 3.2.2.3.4, 3.3.2.3.2 ...).
    if (kTable[p.id].kind == Kind::kByte && p.number > 1) {
      error = "property " + std::to_string(p.id) + " must be 0 or 1";
      return false;
    }
    // A Topic Alias or Subscription Identifier of 0 is a protocol error (sections 3.3.2.3.4 and
    // 3.8.2.1.2).
    if ((p.id == property::kTopicAlias || p.id == 0x0B) && p.number == 0) {
      error = "property " + std::to_string(p.id) + " must not be 0";
      return false;
    }
    return true;
  });
}

std::optional<std::vector<Property>> parse_properties(std::string_view block, std::string& error) {
  std::vector<Property> out;
  if (!walk(block, error, [&](const Property& p, std::string_view) {
        out.push_back(p);
        return true;
      })) {
    return std::nullopt;
  }
  return out;
}

std::optional<Property> find_property(std::string_view block, std::uint8_t id) {
  std::optional<Property> found;
  std::string error;
  walk(block, error, [&](const Property& p, std::string_view) {
    if (p.id != id) return true;
    found = p;
    return false;  // stop at the first
  });
  return found;
}

std::string without_property(std::string_view block, std::uint8_t id) {
  std::string out;
  std::string error;
  walk(block, error, [&](const Property& p, std::string_view raw) {
    if (p.id != id) out.append(raw);
    return true;
  });
  return out;
}

void append_property(std::string& block, std::uint8_t id, std::uint32_t number) {
  detail::put_u8(block, id);
  switch (kind_of(id)) {
    case Kind::kByte:
      detail::put_u8(block, static_cast<std::uint8_t>(number));
      break;
    case Kind::kU16:
      detail::put_u16(block, static_cast<std::uint16_t>(number));
      break;
    case Kind::kVarint:
      detail::put_varint(block, number);
      break;
    default:  // kU32; string-valued ids are the caller's bug: written as u32 all the same
      detail::put_u32(block, number);
      break;
  }
}

void append_property(std::string& block, std::uint8_t id, std::string_view text) {
  detail::put_u8(block, id);
  detail::put_prefixed(block, text);
  // A string pair (User Property) given one string: the name, with an empty value.
  if (kind_of(id) == Kind::kPair) detail::put_prefixed(block, {});
}

}  // namespace wsbridge::mqtt::wire
