// The filters one connection has subscribed, and what they add up to against its route's bounds
// (max_subscriptions, max_subscription_bytes, max_subscription_levels). A count alone bounds
// little: every level of a filter is a node in wsbridge's subscription tree and in the broker's,
// and a filter may have 128 levels and 64 KiB, so 100 such filters took 4.6 MB here and 10 MB in
// mosquitto per connection, 1,000 connections from one address several GB.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "topic_levels.hpp"

namespace wsbridge::mqtt {

struct SubscriptionBounds {
  std::size_t max_filters = 100;
  std::size_t max_bytes = 16000;  // the filters' lengths together
  std::size_t max_levels = 1000;  // the filters' levels together
};

class SubscriptionSet {
 public:
  using const_iterator = std::set<std::string, std::less<>>::const_iterator;

  // Why `filter` may not be added, naming the route key that bounds it; nullopt when it may (a
  // filter already there adds nothing).
  std::optional<std::string> refusal(std::string_view filter,
                                     const SubscriptionBounds& bounds) const {
    if (contains(filter)) return std::nullopt;
    if (filters_.size() + 1 > bounds.max_filters) {
      return "at most " + std::to_string(bounds.max_filters) +
             " subscriptions per connection (max_subscriptions)";
    }
    if (bytes_ + filter.size() > bounds.max_bytes) {
      return "this connection's filters would take more than " + std::to_string(bounds.max_bytes) +
             " bytes together (max_subscription_bytes)";
    }
    if (levels_ + topic_level_count(filter) > bounds.max_levels) {
      return "this connection's filters would have more than " + std::to_string(bounds.max_levels) +
             " levels together (max_subscription_levels)";
    }
    return std::nullopt;
  }

  // True when `filter` is new.
  bool insert(std::string_view filter) {
    if (!filters_.emplace(filter).second) return false;
    bytes_ += filter.size();
    levels_ += topic_level_count(filter);
    return true;
  }
  // True when `filter` was there.
  bool erase(std::string_view filter) {
    const auto it = filters_.find(filter);
    if (it == filters_.end()) return false;
    filters_.erase(it);
    bytes_ -= filter.size();
    levels_ -= topic_level_count(filter);
    return true;
  }
  bool contains(std::string_view filter) const { return filters_.find(filter) != filters_.end(); }
  std::size_t size() const { return filters_.size(); }
  std::size_t bytes() const { return bytes_; }
  std::size_t levels() const { return levels_; }
  const_iterator begin() const { return filters_.begin(); }
  const_iterator end() const { return filters_.end(); }

 private:
  std::set<std::string, std::less<>> filters_;  // (transparent: looked up by string_view)
  std::size_t bytes_ = 0;
  std::size_t levels_ = 0;
};

}  // namespace wsbridge::mqtt
