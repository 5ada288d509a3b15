// Which of a route's connections holds each broker client id, across its shards: a second
// connection with one client id (mqtt.js in a second tab) makes the broker drop the first, and
// mosquitto 2.0.11 does so without the DISCONNECT 0x8E ("session taken over") MQTT 5 provides,
// often not even for an MQTT 5 client: to the first relay that read as the broker failing (1001,
// counted). Marked here, the first relay tells its browser the session was taken over instead.
// (Connections through other instances are not seen: theirs still read as a broker failure.)
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace wsbridge::mqtt {

class SessionOwners {
 public:
  using Claim = std::shared_ptr<std::atomic<bool>>;  // set: taken over by a later connection

  // Any thread. `client_id` is now this caller's; the previous holder's claim is set.
  Claim claim(const std::string& client_id) {
    auto mine = std::make_shared<std::atomic<bool>>(false);
    std::lock_guard lock(mutex_);
    Claim& holder = owners_[client_id];
    if (holder) holder->store(true);
    holder = mine;
    return mine;
  }
  // Any thread. Forgets `client_id` unless another connection claimed it since.
  void release(const std::string& client_id, const Claim& mine) {
    std::lock_guard lock(mutex_);
    const auto it = owners_.find(client_id);
    if (it != owners_.end() && it->second == mine) owners_.erase(it);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, Claim> owners_;
};

}  // namespace wsbridge::mqtt
