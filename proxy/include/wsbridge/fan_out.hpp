// One message to many connections. Each Connection::send is a hand-off to the connection's shard
// (a lock, perhaps a wake-up); send_to_all groups the connections by shard and makes one hand-off
// per shard that owns any of them, carrying the one shared Frame and their ids. Any thread.
#pragma once

#include <memory>
#include <span>

#include "wsbridge/frame.hpp"
#include "wsbridge/plugin.hpp"

namespace wsbridge {

// Sends `frame` to each open connection of `connections` (closed ones are skipped); returns how
// many it was handed to. Order per connection is kept: what was sent to one of them before this
// call arrives before this frame.
std::size_t send_to_all(std::span<const std::shared_ptr<Connection>> connections,
                        const Frame& frame);

}  // namespace wsbridge
