#include "server/connection_slots.hpp"

#include "handshake/ip_address.hpp"

namespace wsbridge {

ConnectionSlots::Slot& ConnectionSlots::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
    address_ = std::move(other.address_);
    ipv6_prefix_bits_ = other.ipv6_prefix_bits_;
  }
  return *this;
}

std::string ConnectionSlots::Slot::group() const {
  return address_group(address_, ipv6_prefix_bits_);
}

void ConnectionSlots::Slot::release() {
  if (!state_) return;  // moved from
  const std::string counted_as = group();
  std::lock_guard lock(state_->mutex);
  --state_->total;
  if (auto it = state_->per_group.find(counted_as);
      it != state_->per_group.end() && --it->second == 0) {
    state_->per_group.erase(it);
  }
  state_.reset();
}

std::optional<ConnectionSlots::Slot> ConnectionSlots::take(const std::string& address,
                                                           const Caps& caps, Refusal& refusal) {
  std::string group = address_group(address, caps.ipv6_prefix_bits);
  std::lock_guard lock(state_->mutex);
  if (state_->total >= caps.total) {
    refusal = Refusal::kTotal;
    return std::nullopt;
  }
  std::size_t& from_group = state_->per_group[group];
  if (from_group >= caps.per_address) {
    if (from_group == 0) state_->per_group.erase(group);
    refusal = Refusal::kPerIp;
    return std::nullopt;
  }
  ++from_group;
  ++state_->total;
  refusal = Refusal::kNone;
  return Slot(state_, address, caps.ipv6_prefix_bits);
}

std::size_t ConnectionSlots::total() const {
  std::lock_guard lock(state_->mutex);
  return state_->total;
}

std::size_t ConnectionSlots::from_group(const std::string& group) const {
  std::lock_guard lock(state_->mutex);
  auto it = state_->per_group.find(group);
  return it == state_->per_group.end() ? 0 : it->second;
}

}  // namespace wsbridge
