// PacketReader: cuts a byte stream into whole MQTT packets without copying the ones that arrive
// whole (see mqtt_packets.hpp).
#include <algorithm>
#include <string>

#include "passthrough/mqtt_packets.hpp"

namespace wsbridge::mqtt::wire {

namespace {

enum class Header : std::uint8_t { kKnown, kNeedMore, kBadType, kBadLength, kNotMinimal };

// The total size of the packet starting at `bytes` (fixed header included), when its fixed header
// is complete. Type 0 is refused from the first byte, and a remaining length whose fourth byte
// still has the continuation bit as soon as that byte is there, so a bad header is never
// buffered waiting for more. A length in more bytes than it needs (a last byte of 0 after a
// continuation) is malformed too [MQTT-1.5.5-1]: one value, one encoding.
Header total_size(std::string_view bytes, std::size_t& total) {
  if (bytes.empty()) return Header::kNeedMore;
  if ((static_cast<unsigned char>(bytes[0]) >> 4) == 0) return Header::kBadType;
  std::size_t remaining = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    if (1 + i >= bytes.size()) return Header::kNeedMore;
    const auto b = static_cast<unsigned char>(bytes[1 + i]);
    remaining |= static_cast<std::size_t>(b & 0x7F) << (7 * i);
    if ((b & 0x80) == 0) {
      if (i > 0 && b == 0) return Header::kNotMinimal;
      total = 1 + (i + 1) + remaining;
      return Header::kKnown;
    }
  }
  return Header::kBadLength;
}

}  // namespace

PacketReader::PacketReader(std::size_t max_packet_bytes) : max_packet_bytes_(max_packet_bytes) {}

void PacketReader::feed(std::string_view bytes) {
  // Views handed out for the previous feed are no longer valid (as documented), so the assembled
  // packet's buffer can go: freed, not kept, as an idle connection should hold no packet memory.
  if (!completed_.empty()) std::string().swap(completed_);
  input_ = bytes;
}

PacketReader::Status PacketReader::next(std::string_view& packet) {
  if (failed_) return Status::kError;
  if (skip_left_ > 0) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(skip_left_, input_.size()));
    input_.remove_prefix(n);
    skip_left_ -= n;
    if (skip_left_ > 0) return Status::kNeedMore;
  }

  // Checks a header: on an error marks the reader failed (for good).
  auto check = [&](std::string_view bytes, std::size_t& total) {
    const Header h = total_size(bytes, total);
    if (h == Header::kBadType) {
      error_ = "packet type 0 is reserved";
    } else if (h == Header::kBadLength) {
      error_ = "remaining length longer than 4 bytes";
    } else if (h == Header::kNotMinimal) {
      error_ = "remaining length not in its shortest encoding";
    } else if (h == Header::kKnown && total > max_packet_bytes_ && oversized_prefix_ == 0) {
      error_ = "packet of " + std::to_string(total) + " bytes is over the limit of " +
               std::to_string(max_packet_bytes_);
      too_large_ = true;
    } else {
      return h;
    }
    failed_ = true;
    partial_.clear();
    partial_.shrink_to_fit();
    input_ = {};
    return h;
  };

  // What is kept of a packet of `total` bytes: all of it, or the prefix of an oversized one.
  const auto kept = [&](std::size_t total) {
    return total > max_packet_bytes_ ? std::min(total, oversized_prefix_) : total;
  };
  // The packet (or prefix) `whole` is complete: the rest of an oversized one is skipped.
  const auto done = [&](std::size_t total, std::string_view whole) {
    packet = whole;
    if (total <= max_packet_bytes_) return Status::kPacket;
    skip_left_ = total - whole.size();
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(skip_left_, input_.size()));
    input_.remove_prefix(n);
    skip_left_ -= n;
    return Status::kOversized;
  };

  std::size_t total = 0;
  if (!partial_.empty()) {
    // Complete the fixed header a byte at a time (at most 4 more bytes), then the body.
    while (check(partial_, total) == Header::kNeedMore) {
      if (input_.empty()) return Status::kNeedMore;
      partial_.push_back(input_[0]);
      input_.remove_prefix(1);
    }
    if (failed_) return Status::kError;
    const std::size_t want = kept(total);
    const std::size_t take = std::min(want - std::min(want, partial_.size()), input_.size());
    partial_.append(input_.substr(0, take));
    input_.remove_prefix(take);
    if (partial_.size() < want) return Status::kNeedMore;
    // A separate buffer, so that a tail copied into partial_ later in this feed cannot overwrite
    // the packet handed out now.
    completed_.swap(partial_);
    std::string().swap(partial_);
    return done(total, completed_);
  }

  if (input_.empty()) return Status::kNeedMore;
  const Header h = check(input_, total);
  if (failed_) return Status::kError;
  if (h == Header::kKnown && total > max_packet_bytes_ && input_.size() >= kept(total)) {
    const std::string_view prefix = input_.substr(0, kept(total));
    input_.remove_prefix(prefix.size());
    return done(total, prefix);
  }
  if (h == Header::kNeedMore || input_.size() < kept(total)) {
    // The incomplete tail: the caller's bytes are gone after the next feed, so copy it. Within
    // the limit (checked above), and not reserved up front: a peer announcing a large packet
    // costs memory only as its bytes arrive.
    partial_.assign(input_);
    input_ = {};
    return Status::kNeedMore;
  }
  packet = input_.substr(0, total);
  input_.remove_prefix(total);
  return Status::kPacket;
}

std::string_view packet_body(std::string_view packet) {
  std::size_t header = 2;
  while (header <= 5 && header <= packet.size() &&
         (static_cast<unsigned char>(packet[header - 1]) & 0x80) != 0) {
    ++header;
  }
  return header >= packet.size() ? std::string_view{} : packet.substr(header);
}

std::optional<std::string> fixed_header_problem(std::string_view packet, std::uint8_t version) {
  const PacketType type = packet_type(packet);
  const auto flags = static_cast<unsigned char>(packet[0]) & 0x0F;
  if (type == PacketType::kAuth && version != kMqtt5) return "AUTH exists in MQTT 5 only";
  if (type == PacketType::kPublish) {
    if (((flags >> 1) & 0x03) == 3) return "PUBLISH QoS 3 is invalid";
    return std::nullopt;
  }
  const bool two = type == PacketType::kPubrel || type == PacketType::kSubscribe ||
                   type == PacketType::kUnsubscribe;
  if (flags != (two ? 0x2 : 0)) {
    return "fixed header flags of packet type " + std::to_string(static_cast<int>(type)) +
           " must be " + std::to_string(two ? 2 : 0);
  }
  return std::nullopt;
}

}  // namespace wsbridge::mqtt::wire
