// Which connection holds each broker client id, per broker: a second connection with one client
// id (mqtt.js in a second tab) makes the broker drop the first, and mosquitto 2.0.11 does so
// without the DISCONNECT 0x8E ("session taken over") MQTT 5 provides, often not even for an MQTT
// 5 client: to the first relay that read as the broker failing (1001, counted). Marked here, the
// first relay tells its browser the session was taken over instead.
//
// The mark is set when the newer connection sends its CONNECT (the broker drops the older one
// right then, possibly before the newer one hears its CONNACK), and taken back if that CONNECT
// comes to nothing (refused, the broker unreachable or silent): the older connection was not
// taken over, and a broker failure afterwards is one. A newer browser gone before its CONNACK
// took the session over all the same: its CONNECT went to the broker, which acted on it. One set
// per broker for the process, whatever route or configuration generation reaches it. (Connections
// through other instances are not seen: theirs still read as a broker failure.)
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace wsbridge::mqtt {

class SessionOwners {
 public:
  using Claim = std::shared_ptr<std::atomic<bool>>;  // set: taken over by a later connection

  // The set for the broker at `broker_uri`, shared by every route that connects to it.
  static std::shared_ptr<SessionOwners> for_broker(const std::string& broker_uri) {
    static std::mutex registry_mutex;
    static std::map<std::string, std::weak_ptr<SessionOwners>> registry;
    std::lock_guard lock(registry_mutex);
    std::weak_ptr<SessionOwners>& slot = registry[broker_uri];
    std::shared_ptr<SessionOwners> owners = slot.lock();
    if (!owners) {
      owners = std::make_shared<SessionOwners>();
      slot = owners;
    }
    return owners;
  }

  // Any thread, as the caller's CONNECT goes to the broker: `client_id` is the caller's now, and
  // the previous holder is marked taken over (until confirm() or release()).
  Claim claim(const std::string& client_id) {
    auto mine = std::make_shared<std::atomic<bool>>(false);
    std::lock_guard lock(mutex_);
    Holder& holder = owners_[client_id];
    if (holder.claim) holder.claim->store(true);
    holder = Holder{mine, holder.claim};
    return mine;
  }
  // Any thread: the broker accepted the caller's CONNECT (CONNACK 0): the previous holder's
  // session is taken over for good.
  void confirm(const std::string& client_id, const Claim& mine) {
    std::lock_guard lock(mutex_);
    const auto it = owners_.find(client_id);
    if (it != owners_.end() && it->second.claim == mine) it->second.previous.reset();
  }
  // Any thread: the caller's CONNECT came to nothing (the broker refused it, was unreachable or
  // did not answer): the previous holder, when its connection is still there, holds the client
  // id again, unmarked.
  void give_back(const std::string& client_id, const Claim& mine) {
    std::lock_guard lock(mutex_);
    const auto it = owners_.find(client_id);
    if (it == owners_.end() || it->second.claim != mine) return;
    Claim previous = std::move(it->second.previous);
    // (Held by its relay besides this copy: that connection is still open. Copied, the test was
    // always true, and a connection gone was given the id back, its entry kept for good.)
    if (previous && previous.use_count() > 1) {
      previous->store(false);
      it->second = Holder{std::move(previous), nullptr};
    } else {
      owners_.erase(it);
    }
  }
  // Any thread, when the caller's connection ends: it holds the client id no more. A previous
  // holder it marked stays marked (what is still unanswered of its CONNECT reached the broker).
  void release(const std::string& client_id, const Claim& mine) {
    std::lock_guard lock(mutex_);
    const auto it = owners_.find(client_id);
    if (it != owners_.end() && it->second.claim == mine) owners_.erase(it);
  }

 private:
  struct Holder {
    Claim claim;     // the connection holding the client id
    Claim previous;  // the one it took it from, until its CONNECT was accepted
  };
  std::mutex mutex_;
  std::unordered_map<std::string, Holder> owners_;
};

}  // namespace wsbridge::mqtt
