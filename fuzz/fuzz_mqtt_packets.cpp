// The MQTT wire format of the pass-through mode (plugins/mqtt/passthrough/mqtt_packets.hpp).
//
// Input: byte 0 picks the chunk sizes, the rest is a byte stream as a browser or broker sends it.
// Checked:
// - PacketReader (limit 64 KiB) fed the stream in chunks (sizes 0..63 from a generator seeded by
//   byte 0) gives exactly the packets, final status, too_large() and error of feeding it at once;
//   packets are whole (type 1..15, fixed header + body = size, within the limit); after kNeedMore
//   exactly the unread tail is buffered, after kError nothing;
// - every packet goes through every parser for MQTT 3.1.1 and 5 (and parse_connect); whatever
//   parses re-encodes to a packet that parses back equal (parse(encode(x)) == x), and fits the
//   reader's view of a packet; property blocks that a parser accepted parse with
//   parse_properties, find_property finds each first occurrence, and without_property(id) leaves
//   a valid block without that id and the others in order;
// - encode_disconnect with the stream as Reason String stays under 600 bytes and parses back.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "passthrough/mqtt_packets.hpp"

namespace {

using namespace wsbridge::mqtt::wire;

constexpr std::size_t kLimit = 64 * 1024;

[[noreturn]] void fail(const char* what, std::string_view a, std::string_view b = {}) {
  wsbridge_fuzz::fail("fuzz_mqtt_packets", what, {a, b});
}

struct ReadResult {
  std::vector<std::string> packets;
  PacketReader::Status status = PacketReader::Status::kNeedMore;
  bool too_large = false;
  std::string error;
  std::size_t buffered = 0;
};

ReadResult read(std::string_view stream, std::uint8_t seed, bool chunked) {
  ReadResult out;
  PacketReader reader(kLimit);
  std::uint32_t state = seed * 2654435761u + 1;
  std::size_t consumed = 0;  // bytes of returned packets
  std::size_t fed = 0;
  while (fed < stream.size() || fed == 0) {
    std::size_t n = stream.size() - fed;
    if (chunked) {
      state = state * 1103515245u + 12345u;
      n = std::min<std::size_t>(n, (state >> 16) % 64);
    }
    reader.feed(stream.substr(fed, n));
    fed += n;
    std::string_view packet;
    while ((out.status = reader.next(packet)) == PacketReader::Status::kPacket) {
      out.packets.emplace_back(packet);
      consumed += packet.size();
    }
    if (out.status == PacketReader::Status::kError) {
      if (reader.buffered() != 0) fail("bytes buffered after an error", stream);
      // Stays in error.
      reader.feed(stream);
      if (reader.next(packet) != PacketReader::Status::kError) fail("error did not stick", stream);
      break;
    }
    if (reader.buffered() != fed - consumed) fail("buffered() is not the unread tail", stream);
    if (stream.empty()) break;
  }
  out.too_large = reader.too_large();
  out.error = reader.error();
  out.buffered = reader.buffered();
  return out;
}

void check_block(std::string_view block, std::string_view packet) {
  std::string error;
  const auto properties = parse_properties(block, error);
  if (!properties) fail("an accepted property block does not parse", packet, error);
  for (std::size_t i = 0; i < properties->size(); ++i) {
    const Property& p = (*properties)[i];
    const auto found = find_property(block, p.id);
    bool first = true;
    for (std::size_t j = 0; j < i; ++j) first = first && (*properties)[j].id != p.id;
    if (!found || (first && (found->number != p.number || found->text != p.text ||
                             found->second != p.second))) {
      fail("find_property misses the first occurrence", packet);
    }
    const std::string rest = without_property(block, p.id);
    const auto left = parse_properties(rest, error);
    if (!left) fail("without_property leaves an invalid block", packet, error);
    std::size_t k = 0;
    for (const Property& q : *properties) {
      if (q.id == p.id) continue;
      if (k >= left->size() || (*left)[k].id != q.id || (*left)[k].text != q.text) {
        fail("without_property changed other properties", packet);
      }
      ++k;
    }
    if (k != left->size()) fail("without_property left the id in", packet);
  }
}

// The encoder's output is one whole packet the reader accepts as it is.
void check_encoded(const std::string& encoded, std::string_view packet) {
  PacketReader reader(kLimit * 2);
  reader.feed(encoded);
  std::string_view got;
  if (reader.next(got) != PacketReader::Status::kPacket || got.size() != encoded.size()) {
    fail("an encoded packet is not one whole packet", packet, encoded);
  }
}

template <typename Parse, typename Encode>
void round_trip(std::string_view packet, std::uint8_t version, Parse parse, Encode encode,
                const char* what) {
  std::string error;
  const auto x = parse(packet, version, error);
  if (!x) {
    if (error.empty()) fail("a refused packet without a reason", packet);
    return;
  }
  if (fixed_header_problem(packet, version))
    fail("a parser accepted bad fixed header flags", packet);
  const std::string encoded = encode(*x, version);
  check_encoded(encoded, packet);
  const auto y = parse(encoded, version, error);
  if (!y) fail(what, packet, error);
  if (!(*y == *x)) fail(what, packet, encoded);
  if constexpr (requires { x->properties; }) {
    if (version == kMqtt5) check_block(x->properties, packet);
  }
}

void check_packet(std::string_view packet) {
  const auto type = static_cast<unsigned>(static_cast<unsigned char>(packet[0]) >> 4);
  if (type < 1 || type > 15) fail("reader returned packet type 0", packet);
  if (packet.size() > kLimit) fail("reader returned a packet over the limit", packet);
  std::size_t header = 2;
  while ((static_cast<unsigned char>(packet[header - 1]) & 0x80) != 0) ++header;
  if (header + packet_body(packet).size() != packet.size()) fail("packet_body length", packet);

  // Whatever a parser accepts has valid fixed header flags.
  const bool flags_ok = !fixed_header_problem(packet, kMqtt5);

  std::string error;
  if (const auto connect = parse_connect(packet, error)) {
    if (!flags_ok) fail("parse_connect accepted bad fixed header flags", packet);
    const std::string encoded = encode_connect(*connect);
    check_encoded(encoded, packet);
    const auto back = parse_connect(encoded, error);
    if (!back || !(*back == *connect)) fail("CONNECT round trip", packet, encoded);
    if (connect->version == kMqtt5) {
      check_block(connect->properties, packet);
      if (connect->will) check_block(connect->will->properties, packet);
    }
  } else if (error.empty()) {
    fail("a refused CONNECT without a reason", packet);
  }

  for (std::uint8_t version : {kMqtt311, kMqtt5}) {
    round_trip(packet, version, parse_connack, encode_connack, "CONNACK round trip");
    round_trip(packet, version, parse_publish, encode_publish, "PUBLISH round trip");
    // (encode_subscribe has an overload for entries already encoded: this one is named.)
    round_trip(packet, version, parse_subscribe,
               static_cast<std::string (*)(const SubscribePacket&, std::uint8_t)>(encode_subscribe),
               "SUBSCRIBE round trip");
    round_trip(packet, version, parse_suback, encode_suback, "SUBACK round trip");
    round_trip(packet, version, parse_unsubscribe, encode_unsubscribe, "UNSUBSCRIBE round trip");
    round_trip(packet, version, parse_unsuback, encode_unsuback, "UNSUBACK round trip");
    round_trip(packet, version, parse_ack, encode_ack, "acknowledgement round trip");
    round_trip(
        packet, version, parse_disconnect,
        [](std::uint8_t code, std::uint8_t v) { return encode_disconnect(v, code); },
        "DISCONNECT round trip");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t seed = data[0];
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);

  const ReadResult whole = read(stream, seed, false);
  const ReadResult chunked = read(stream, seed, true);
  if (whole.packets != chunked.packets) fail("chunked and whole feeds give other packets", stream);
  if (whole.status != chunked.status || whole.too_large != chunked.too_large ||
      whole.error != chunked.error || whole.buffered != chunked.buffered) {
    fail("chunked and whole feeds end differently", stream, chunked.error);
  }
  for (const auto& packet : whole.packets) check_packet(packet);

  for (std::uint8_t version : {kMqtt311, kMqtt5}) {
    const std::string disconnect = encode_disconnect(version, 0x82, stream);
    if (disconnect.size() > 600) fail("DISCONNECT with a long reason is too large", stream);
    std::string error;
    const auto code = parse_disconnect(disconnect, version, error);
    if (!code || *code != (version == kMqtt5 ? 0x82 : 0)) {
      fail("encode_disconnect does not parse back", stream, disconnect);
    }
  }
  return 0;
}
