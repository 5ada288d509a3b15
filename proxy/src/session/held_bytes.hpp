// Bytes one session holds against its shard's count of what clients sent and wsbridge has not
// passed on yet ([limits] inbound_bytes_in_flight): a WebSocket message being reassembled, a
// partial packet an adapter gathers. Given back when the holder is destroyed, so a session that
// goes mid-message cannot leave its bytes counted.
#pragma once

#include <cstddef>

namespace wsbridge {

class HeldBytes {
 public:
  HeldBytes() = default;
  HeldBytes(const HeldBytes&) = delete;
  HeldBytes& operator=(const HeldBytes&) = delete;
  ~HeldBytes() { set(0); }

  // Service thread, once, before anything is held: the shard's count.
  void bind(std::size_t* shard_count) { shard_count_ = shard_count; }
  std::size_t bytes() const { return bytes_; }

  // What is held becomes `n`. Growing is refused (false, nothing changes) when the shard's count
  // would pass `limit`, unless `n` is within `always_allowed`: every session may hold that much
  // whatever others hold, so small fragmented messages pass even while big ones are refused.
  bool set(std::size_t n, std::size_t limit = static_cast<std::size_t>(-1),
           std::size_t always_allowed = 0) {
    if (shard_count_ == nullptr) return true;  // (not bound: a session being torn down early)
    if (n > bytes_ && n > always_allowed && *shard_count_ + (n - bytes_) > limit) return false;
    *shard_count_ = *shard_count_ - bytes_ + n;
    bytes_ = n;
    return true;
  }

 private:
  std::size_t* shard_count_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace wsbridge
