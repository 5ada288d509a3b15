// The global connection limits ([limits] max_connections, max_connections_per_ip), counted from
// the moment an upgrade passes the core's checks until the connection is gone.
//
// A connection holds a Slot through every stage it may wait in: an upgrade on its way to the 101,
// an upgrade held for its route's admission check (which may take seconds: #13.5 found eight
// held upgrades from one address all admitted under a limit of three), and the open session.
// The Slot gives its place back when destroyed, so no stage can forget to. Thread-safe, so the
// count stays global when connections are served by more than one thread.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace wsbridge {

class ConnectionSlots {
  struct State {
    std::mutex mutex;
    std::size_t total = 0;
    std::unordered_map<std::string, std::size_t> per_ip;
  };

 public:
  enum class Refusal { kNone, kTotal, kPerIp };

  // One connection's place, given back when destroyed. Move-only.
  class Slot {
   public:
    Slot(Slot&& other) noexcept = default;
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { release(); }
    const std::string& address() const { return ip_; }  // the client's, as it was counted

   private:
    friend class ConnectionSlots;
    Slot(std::shared_ptr<State> state, std::string ip)
        : state_(std::move(state)), ip_(std::move(ip)) {}
    void release();
    std::shared_ptr<State> state_;
    std::string ip_;
  };

  // A place for a connection from `ip`, or the limit that refuses it.
  std::optional<Slot> take(const std::string& ip, std::size_t max_total, std::size_t max_per_ip,
                           Refusal& refusal);
  std::size_t total() const;
  std::size_t from(const std::string& ip) const;

 private:
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace wsbridge
