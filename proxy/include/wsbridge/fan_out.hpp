// One message to many connections. Each Connection::send is a hand-off to the connection's shard
// (a lock, perhaps a wake-up); send_to_all groups the connections by shard and makes one hand-off
// per shard that owns any of them, carrying the one shared Frame and their ids. Any thread.
#pragma once

#include <memory>
#include <span>

#include "wsbridge/frame.hpp"
#include "wsbridge/plugin.hpp"

namespace wsbridge {

// What send_to_all did: how many connections it handed the frame to, and of those how many it
// expects to be over their high-water mark or dropped (Connection::send's answers, counted).
struct FanOutResult {
  std::size_t handed = 0;
  std::size_t over_high_water = 0;
  std::size_t dropped = 0;
};

// Sends `frame` to each open connection of `connections` (closed ones are skipped). Order per
// connection is kept: what was sent to one of them before this call arrives before this frame.
FanOutResult send_to_all(std::span<const std::shared_ptr<Connection>> connections,
                         const Frame& frame);

}  // namespace wsbridge
