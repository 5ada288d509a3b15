// Which shard the calling thread serves: set once by each shard's service thread, read by what is
// kept per shard behind an interface that does not name shards (the HTTP client's pools).
#pragma once

namespace wsbridge::this_shard {

inline thread_local unsigned current_index = 0;

// The shard whose service thread this is (0 on any other thread).
inline unsigned index() {
  return current_index;
}
// Called once on each shard's service thread before it serves.
inline void set_index(unsigned index) {
  current_index = index;
}

}  // namespace wsbridge::this_shard
