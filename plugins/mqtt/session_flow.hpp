// Inbound flow control for one MQTT session: counts what the client sent that the upstream has
// not finished with (messages queued for the worker, QoS 1/2 publishes awaiting the broker's ack
// or buffered during an outage) and pauses reading from the client at a high watermark (the
// upstream's `session_window`), resuming at the low one (half of it). A frozen or slow broker
// thus slows the browser down through TCP instead of growing wsbridge's memory.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>

#include "wsbridge/plugin.hpp"

namespace wsbridge::mqtt {

class SessionFlow {
 public:
  SessionFlow(std::shared_ptr<Connection> connection, std::atomic<std::size_t>& upstream_total,
              std::size_t window)
      : connection_(std::move(connection)),
        upstream_total_(upstream_total),
        high_(window),
        low_(window / 2) {}

  // Service thread: one more message from the client.
  void acquire() {
    upstream_total_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(mutex_);  // pause and resume must reach the core in the order decided
    if (++outstanding_ >= high_ && !paused_) {
      paused_ = true;
      connection_->pause_reading(true);
    }
  }
  // Any thread: the upstream is done with one of them.
  void release() {
    upstream_total_.fetch_sub(1, std::memory_order_relaxed);
    std::lock_guard lock(mutex_);
    if (--outstanding_ <= low_ && paused_) {
      paused_ = false;
      connection_->pause_reading(false);
    }
  }

 private:
  const std::shared_ptr<Connection> connection_;
  std::atomic<std::size_t>& upstream_total_;
  const std::size_t high_;
  const std::size_t low_;
  std::mutex mutex_;
  std::size_t outstanding_ = 0;
  bool paused_ = false;
};

// One message's share of its session's flow, released when the upstream is done with it (the
// ticket is destroyed): it travels with the event, then with the publish until its ack.
class FlowTicket {
 public:
  FlowTicket() = default;
  explicit FlowTicket(std::shared_ptr<SessionFlow> flow) : flow_(std::move(flow)) {
    if (flow_) flow_->acquire();
  }
  ~FlowTicket() {
    if (flow_) flow_->release();
  }
  FlowTicket(FlowTicket&& other) noexcept = default;
  FlowTicket& operator=(FlowTicket&& other) noexcept {
    if (this != &other) {
      if (flow_) flow_->release();
      flow_ = std::move(other.flow_);
    }
    return *this;
  }
  FlowTicket(const FlowTicket&) = delete;
  FlowTicket& operator=(const FlowTicket&) = delete;

 private:
  std::shared_ptr<SessionFlow> flow_;
};

}  // namespace wsbridge::mqtt
