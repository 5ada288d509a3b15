// Items waiting for a shared resource, taken one session at a time in turn (round robin), each
// session's own items in their order. The upstream's QoS 1/2 publishes wait in one for the
// broker's publish window: every client shares one broker connection, and in one FIFO a client
// that sent a burst (up to session_window publishes; a thousand connections a quarter of a
// million) had everyone else's publishes wait behind all of it.
#pragma once

#include <cstddef>
#include <deque>
#include <unordered_map>
#include <utility>

#include "wsbridge/plugin.hpp"

namespace wsbridge::mqtt {

// Item has a `session` member (a ConnectionId).
template <typename Item>
class FairQueue {
 public:
  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }

  // Behind the session's other items; a session new to the queue takes its turn last.
  void push_back(Item item) {
    std::deque<Item>& own = by_session_[item.session];
    if (own.empty()) turns_.push_back(item.session);
    own.push_back(std::move(item));
    ++size_;
  }
  // Ahead of the session's other items, and the session first in turn (what must go again
  // before anything else: publishes a lost connection left unacknowledged).
  void push_front(Item item) {
    std::deque<Item>& own = by_session_[item.session];
    if (own.empty()) {
      turns_.push_front(item.session);
    } else {
      move_to_front(item.session);
    }
    own.push_front(std::move(item));
    ++size_;
  }

  // The item whose turn it is (the queue is not empty).
  Item& front() { return by_session_.find(turns_.front())->second.front(); }
  // Takes it; its session, if it has more, goes to the back of the turns.
  Item pop() {
    const ConnectionId session = turns_.front();
    turns_.pop_front();
    auto own = by_session_.find(session);
    Item item = std::move(own->second.front());
    own->second.pop_front();
    if (own->second.empty()) {
      by_session_.erase(own);
    } else {
      turns_.push_back(session);
    }
    --size_;
    return item;
  }

 private:
  void move_to_front(ConnectionId session) {
    for (auto it = turns_.begin(); it != turns_.end(); ++it) {
      if (*it == session) {
        turns_.erase(it);
        break;
      }
    }
    turns_.push_front(session);
  }

  std::unordered_map<ConnectionId, std::deque<Item>> by_session_;
  std::deque<ConnectionId> turns_;  // sessions with items, the one whose turn it is first
  std::size_t size_ = 0;
};

}  // namespace wsbridge::mqtt
