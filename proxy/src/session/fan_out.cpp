#include "wsbridge/fan_out.hpp"

#include <algorithm>
#include <vector>

#include "server/this_shard.hpp"
#include "session/connection_handle.hpp"

namespace wsbridge {

unsigned current_shard() {
  return this_shard::index();
}

FanOutResult send_to_all(std::span<const std::shared_ptr<Connection>> connections,
                         const Frame& frame) {
  // Shards are few: a short list of (inbox, command) beats a map.
  std::vector<std::pair<ServiceInbox*, InboxCommand>> by_shard;
  // The compressed variants the sessions need, built here once each (before any shard writes):
  // usually one, for the configured window and level.
  std::vector<std::uint16_t> prepared;
  FanOutResult result;
  auto count = [&result](SendResult r) {
    if (r == SendResult::kClosed) return false;
    ++result.handed;
    if (r == SendResult::kQueuedOverHighWater) ++result.over_high_water;
    if (r == SendResult::kDropped) ++result.dropped;
    return true;
  };
  for (const auto& connection : connections) {
    auto* handle = dynamic_cast<ConnectionHandle*>(connection.get());
    if (handle == nullptr) {
      count(connection->send(frame));  // not one of the core's (a test double): its own send
      continue;
    }
    if (!count(handle->reserve(frame.size()))) continue;
    const shared_deflate::WireFormat& format = handle->wire_format();
    if (format.compresses() &&
        std::find(prepared.begin(), prepared.end(), format.key) == prepared.end()) {
      prepared.push_back(format.key);
      shared_deflate::prepare(frame, format);
    }
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
    // (A shard that is gone took its connections with it: they count as handed all the same, as
    // a send racing a close does.)
    inbox->post(std::move(command));
  }
  return result;
}

}  // namespace wsbridge
