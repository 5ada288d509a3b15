// What one session holds of its client's input against its shard's count of what clients sent
// and wsbridge has not passed on yet ([limits] inbound_bytes_in_flight): the WebSocket message
// being reassembled, and what its adapter holds (Connection::hold_inbound, by kind). Given back
// when destroyed, so a session that goes mid-message cannot leave its bytes counted. One object
// for the three parts: it is in every session, and idle connections are counted in bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace wsbridge {

class HeldBytes {
 public:
  enum class Part : std::uint8_t { kReassembly, kAdapterPartial, kAdapterWaiting };

  HeldBytes() = default;
  HeldBytes(const HeldBytes&) = delete;
  HeldBytes& operator=(const HeldBytes&) = delete;
  ~HeldBytes() {
    if (shard_count_ == nullptr) return;
    for (std::size_t n : bytes_) *shard_count_ -= n;
  }

  // Service thread, once, before anything is held: the shard's count.
  void bind(std::size_t* shard_count) { shard_count_ = shard_count; }
  std::size_t bytes(Part part) const { return bytes_[index(part)]; }
  // What a refusal can take back: the message being reassembled and the adapter's partial
  // packet (not messages waiting for an upstream, which are whole and only pause the client).
  std::size_t unfinished() const { return bytes(Part::kReassembly) + bytes(Part::kAdapterPartial); }
  // The same, were `part` to hold `n`.
  std::size_t unfinished_with(Part part, std::size_t n) const {
    return unfinished() - (part == Part::kAdapterWaiting ? 0 : bytes(part)) +
           (part == Part::kAdapterWaiting ? 0 : n);
  }

  // What `part` holds becomes `n`. Growing is refused (false, nothing changes) when the shard's
  // count would pass `limit`, unless `n` is within `always_allowed`: every session may hold that
  // much whatever others hold, so small fragmented messages pass even while big ones are refused.
  bool set(Part part, std::size_t n, std::size_t limit = static_cast<std::size_t>(-1),
           std::size_t always_allowed = 0) {
    if (shard_count_ == nullptr) return true;  // (not bound: a session being torn down early)
    std::size_t& held = bytes_[index(part)];
    if (n > held && n > always_allowed && *shard_count_ + (n - held) > limit) return false;
    *shard_count_ = *shard_count_ - held + n;
    held = n;
    return true;
  }

 private:
  static std::size_t index(Part part) { return static_cast<std::size_t>(part); }

  std::size_t* shard_count_ = nullptr;
  std::array<std::size_t, 3> bytes_{};
};

}  // namespace wsbridge
