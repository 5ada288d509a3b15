// The global connection limits ([limits] max_connections, max_connections_per_ip), counted from
// the moment an upgrade passes the core's checks until the connection is gone.
//
// A connection holds a Slot through every stage it may wait in: an upgrade on its way to the 101,
// an upgrade held for its route's admission check (which may take seconds: #13.5 found eight
// held upgrades from one address all admitted under a limit of three), and the open session.
// The Slot gives its place back when destroyed, so no stage can forget to. Thread-safe, so the
// count stays global when connections are served by more than one thread. Addresses are counted
// by their group (handshake/ip_address.hpp): an IPv6 client by its network, not its one address.
#pragma once

#include <cstddef>
#include <cstdint>
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
    std::unordered_map<std::string, std::size_t> per_group;
  };

 public:
  enum class Refusal { kNone, kTotal, kPerIp };

  struct Caps {
    std::size_t total = 0;
    std::size_t per_address = 0;     // per address group
    unsigned ipv6_prefix_bits = 64;  // the group of an IPv6 address: its network of this many bits
  };

  // One connection's place, given back when destroyed. Move-only.
  class Slot {
   public:
    Slot(Slot&& other) noexcept = default;
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { release(); }
    const std::string& address() const { return address_; }  // the client's, as it came
    std::string group() const;                               // what it was counted under

   private:
    friend class ConnectionSlots;
    Slot(std::shared_ptr<State> state, std::string address, unsigned ipv6_prefix_bits)
        : state_(std::move(state)),
          address_(std::move(address)),
          ipv6_prefix_bits_(static_cast<std::uint8_t>(ipv6_prefix_bits)) {}
    void release();
    std::shared_ptr<State> state_;
    std::string address_;
    // The group is found again from these when the place is given back (a slot is kept by every
    // open connection: 8 bytes here rather than a second string; a reload may change the
    // prefix, so the one it was counted with is kept).
    std::uint8_t ipv6_prefix_bits_;
  };

  // A place for a connection from `address`, or the limit that refuses it.
  std::optional<Slot> take(const std::string& address, const Caps& caps, Refusal& refusal);
  std::size_t total() const;
  std::size_t from_group(const std::string& group) const;

 private:
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace wsbridge
