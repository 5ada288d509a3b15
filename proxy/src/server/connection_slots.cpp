#include "server/connection_slots.hpp"

namespace wsbridge {

ConnectionSlots::Slot& ConnectionSlots::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
    ip_ = std::move(other.ip_);
  }
  return *this;
}

void ConnectionSlots::Slot::release() {
  if (!state_) return;  // moved from
  std::lock_guard lock(state_->mutex);
  --state_->total;
  if (auto it = state_->per_ip.find(ip_); it != state_->per_ip.end() && --it->second == 0) {
    state_->per_ip.erase(it);
  }
  state_.reset();
}

std::optional<ConnectionSlots::Slot> ConnectionSlots::take(const std::string& ip,
                                                           std::size_t max_total,
                                                           std::size_t max_per_ip,
                                                           Refusal& refusal) {
  std::lock_guard lock(state_->mutex);
  if (state_->total >= max_total) {
    refusal = Refusal::kTotal;
    return std::nullopt;
  }
  std::size_t& from_ip = state_->per_ip[ip];
  if (from_ip >= max_per_ip) {
    if (from_ip == 0) state_->per_ip.erase(ip);
    refusal = Refusal::kPerIp;
    return std::nullopt;
  }
  ++from_ip;
  ++state_->total;
  refusal = Refusal::kNone;
  return Slot(state_, ip);
}

std::size_t ConnectionSlots::total() const {
  std::lock_guard lock(state_->mutex);
  return state_->total;
}

std::size_t ConnectionSlots::from(const std::string& ip) const {
  std::lock_guard lock(state_->mutex);
  auto it = state_->per_ip.find(ip);
  return it == state_->per_ip.end() ? 0 : it->second;
}

}  // namespace wsbridge
