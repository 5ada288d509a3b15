// The Connection that adapters hold: an id plus the service inbox. It never touches lws or the
// session directly, so it is safe from any thread and may outlive the connection. It mirrors the
// session's queue in atomics, so send() can answer how the frame fares without asking the service
// thread (plugin.hpp, SendResult).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <limits>
#include <memory>

#include "compression/shared_deflate.hpp"
#include "server/service_inbox.hpp"
#include "wsbridge/plugin.hpp"

namespace wsbridge {

// The route's outbound limits, as send() judges a frame against them.
struct SendLimits {
  std::size_t max_bytes = std::numeric_limits<std::size_t>::max();
  std::size_t max_messages = std::numeric_limits<std::size_t>::max();
  std::size_t high_water_bytes = std::numeric_limits<std::size_t>::max();
};

// What a handle asks of the shard that owns its connection: the calls adapters make on the
// service thread that need the session itself, not a command through the inbox. (A pointer, not
// two std::function: every connection has a handle, and idle connections are counted in bytes.)
class SessionHost {
 public:
  // Connection::authenticate: judged by the route's policy; arms the session's expiry.
  virtual CredentialCheck authenticate_in_band(ConnectionId id, std::string_view credential) = 0;
  // Connection::hold_inbound: counted against the shard's share of inbound_bytes_in_flight.
  virtual bool hold_inbound(ConnectionId id, std::size_t bytes, InboundHold kind) = 0;
  // Connection::heard_while_held: while its transport holds reading until a frame is out.
  virtual std::optional<std::chrono::steady_clock::time_point> heard_while_held(
      ConnectionId id) const = 0;

 protected:
  ~SessionHost() = default;
};

class ConnectionHandle final : public Connection {
 public:
  ConnectionHandle(ConnectionId id, Identity identity, std::shared_ptr<ServiceInbox> inbox,
                   SendLimits limits = {})
      : id_(id), identity_(std::move(identity)), inbox_(std::move(inbox)), limits_(limits) {}

  ConnectionId id() const override { return id_; }
  const Identity& identity() const override { return identity_; }
  SendResult send(Frame frame) override;
  void close(CloseCode code, std::string_view reason) override;
  bool is_open() const override { return open_.load(std::memory_order_acquire); }
  void pause_reading(bool paused) override;
  // Whether the adapter's latest word is to pause reading, before the shard applied it (its
  // inbox does, after the current loop turn): a fallback POST applying many records stops at it.
  bool pause_asked() const { return pause_asked_.load(std::memory_order_acquire); }
  CredentialCheck authenticate(std::string_view credential) override {
    if (host_ == nullptr) return Connection::authenticate(credential);
    return host_->authenticate_in_band(id_, credential);
  }
  bool hold_inbound(std::size_t bytes, InboundHold kind) override {
    return host_ == nullptr || host_->hold_inbound(id_, bytes, kind);
  }
  std::optional<std::chrono::steady_clock::time_point> heard_while_held() const override {
    if (host_ == nullptr) return std::nullopt;
    return host_->heard_while_held(id_);
  }
  // Service thread, before the adapter hears of the connection: who answers authenticate() and
  // hold_inbound() (its shard).
  void set_host(SessionHost* host) { host_ = host; }

  // The owning shard's inbox (fan-out groups connections by it).
  const std::shared_ptr<ServiceInbox>& inbox() const { return inbox_; }
  // Which shared compressed variant its frames are written as: fan-out builds it on the sending
  // thread. Set once, before the handle is published to any other thread.
  void set_wire_format(const shared_deflate::WireFormat& format) { wire_format_ = format; }
  const shared_deflate::WireFormat& wire_format() const { return wire_format_; }

  // Service thread, when the connection is gone.
  void mark_closed() { open_.store(false, std::memory_order_release); }
  // Service thread: its close is decided; sends are refused from now on.
  void mark_closing() { closing_.store(true, std::memory_order_release); }
  // Any thread: the close is decided (the admin API neither pushes to nor closes such a session).
  bool closing() const { return closing_.load(std::memory_order_acquire); }
  // Service thread: what the session's queue holds now (after a frame was queued, written or
  // dropped).
  void set_queued(std::size_t bytes, std::size_t messages) {
    queued_bytes_.store(bytes, std::memory_order_relaxed);
    queued_messages_.store(messages, std::memory_order_relaxed);
  }
  // Any thread, for a frame of `bytes` about to be handed to the shard (send, send_to_all): how
  // it will fare, judged as enqueue() will judge it; it counts as on its way from now on. kClosed
  // reserves nothing.
  SendResult reserve(std::size_t bytes);
  // Service thread: a frame of `bytes` sent through this handle reached the session (queued or
  // not), so it no longer counts as on its way.
  void handed_over(std::size_t bytes) {
    in_transit_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    in_transit_messages_.fetch_sub(1, std::memory_order_relaxed);
  }
  // Service thread: whether a send answered kQueuedOverHighWater since the last call. The sender
  // was promised on_drained then, even when the queue has shrunk below the mark by the time the
  // frame is queued (bytes in transit counted toward the answer).
  bool take_over_high_water_told() {
    return told_over_high_water_.exchange(false, std::memory_order_relaxed);
  }

 private:
  const ConnectionId id_;
  const Identity identity_;
  const std::shared_ptr<ServiceInbox> inbox_;
  const SendLimits limits_;
  shared_deflate::WireFormat wire_format_;
  SessionHost* host_ = nullptr;
  std::atomic<bool> open_{true};
  std::atomic<bool> closing_{false};
  std::atomic<bool> told_over_high_water_{false};  // (take_over_high_water_told)
  std::atomic<bool> pause_asked_{false};           // (pause_asked)
  std::atomic<std::size_t> queued_bytes_{0};
  std::atomic<std::size_t> queued_messages_{0};
  // Sent through this handle and not yet taken over by the service thread (in the inbox).
  std::atomic<std::size_t> in_transit_bytes_{0};
  std::atomic<std::size_t> in_transit_messages_{0};
};

}  // namespace wsbridge
