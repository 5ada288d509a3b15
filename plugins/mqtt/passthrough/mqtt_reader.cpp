// PacketReader: cuts a byte stream into whole MQTT packets without copying the ones that arrive
// whole (see mqtt_packets.hpp).
#include <algorithm>
#include <string>

#include "passthrough/mqtt_packets.hpp"

namespace wsbridge::mqtt::wire {

namespace {

enum class Header : std::uint8_t { kKnown, kNeedMore, kBadType, kBadLength };

// The total size of the packet starting at `bytes` (fixed header included), when its fixed header
// is complete. Type 0 is refused from the first byte, and a remaining length whose fourth byte
// still has the continuation bit as soon as that byte is there, so a bad header is never
// buffered waiting for more.
Header total_size(std::string_view bytes, std::size_t& total) {
  if (bytes.empty()) return Header::kNeedMore;
  if ((static_cast<unsigned char>(bytes[0]) >> 4) == 0) return Header::kBadType;
  std::size_t remaining = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    if (1 + i >= bytes.size()) return Header::kNeedMore;
    const auto b = static_cast<unsigned char>(bytes[1 + i]);
    remaining |= static_cast<std::size_t>(b & 0x7F) << (7 * i);
    if ((b & 0x80) == 0) {
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

  // Checks a header: on an error marks the reader failed (for good).
  auto check = [&](std::string_view bytes, std::size_t& total) {
    const Header h = total_size(bytes, total);
    if (h == Header::kBadType) {
      error_ = "packet type 0 is reserved";
    } else if (h == Header::kBadLength) {
      error_ = "remaining length longer than 4 bytes";
    } else if (h == Header::kKnown && total > max_packet_bytes_) {
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

  std::size_t total = 0;
  if (!partial_.empty()) {
    // Complete the fixed header a byte at a time (at most 4 more bytes), then the body.
    while (check(partial_, total) == Header::kNeedMore) {
      if (input_.empty()) return Status::kNeedMore;
      partial_.push_back(input_[0]);
      input_.remove_prefix(1);
    }
    if (failed_) return Status::kError;
    const std::size_t take = std::min(total - partial_.size(), input_.size());
    partial_.append(input_.substr(0, take));
    input_.remove_prefix(take);
    if (partial_.size() < total) return Status::kNeedMore;
    // A separate buffer, so that a tail copied into partial_ later in this feed cannot overwrite
    // the packet handed out now.
    completed_.swap(partial_);
    std::string().swap(partial_);
    packet = completed_;
    return Status::kPacket;
  }

  if (input_.empty()) return Status::kNeedMore;
  const Header h = check(input_, total);
  if (failed_) return Status::kError;
  if (h == Header::kNeedMore || input_.size() < total) {
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

}  // namespace wsbridge::mqtt::wire
