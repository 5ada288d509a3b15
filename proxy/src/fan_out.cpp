#include "wsbridge/fan_out.hpp"

#include <algorithm>
#include <vector>

#include "connection_handle.hpp"
#include "this_shard.hpp"

namespace wsbridge {

unsigned current_shard() {
  return this_shard::index();
}

std::size_t send_to_all(std::span<const std::shared_ptr<Connection>> connections,
                        const Frame& frame) {
  // Shards are few: a short list of (inbox, command) beats a map.
  std::vector<std::pair<ServiceInbox*, InboxCommand>> by_shard;
  std::size_t handed = 0;
  for (const auto& connection : connections) {
    auto* handle = dynamic_cast<ConnectionHandle*>(connection.get());
    if (handle == nullptr) {
      // Not one of the core's (a test double): its own send.
      if (connection->send(frame) != SendResult::kClosed) ++handed;
      continue;
    }
    if (!handle->is_open()) continue;
    ServiceInbox* inbox = handle->inbox().get();
    auto it = std::find_if(by_shard.begin(), by_shard.end(),
                           [inbox](const auto& entry) { return entry.first == inbox; });
    if (it == by_shard.end()) {
      InboxCommand command;
      command.type = InboxCommand::Type::kSendMany;
      command.frame = frame;
      it = by_shard.insert(by_shard.end(), {inbox, std::move(command)});
    }
    it->second.connections.push_back(handle->id());
  }
  for (auto& [inbox, command] : by_shard) {
    const std::size_t n = command.connections.size();
    if (inbox->post(std::move(command))) handed += n;
  }
  return handed;
}

}  // namespace wsbridge
