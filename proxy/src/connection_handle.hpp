// The Connection that adapters hold: an id plus the service inbox. It never touches lws or the
// session directly, so it is safe from any thread and may outlive the connection.
#pragma once

#include <atomic>
#include <memory>

#include "service_inbox.hpp"
#include "wsbridge/plugin.hpp"

namespace wsbridge {

class ConnectionHandle final : public Connection {
 public:
  ConnectionHandle(ConnectionId id, Identity identity, std::shared_ptr<ServiceInbox> inbox)
      : id_(id), identity_(std::move(identity)), inbox_(std::move(inbox)) {}

  ConnectionId id() const override { return id_; }
  const Identity& identity() const override { return identity_; }
  SendResult send(Frame frame) override;
  void close(CloseCode code, std::string_view reason) override;
  bool is_open() const override { return open_.load(std::memory_order_acquire); }
  void pause_reading(bool paused) override;

  // The owning shard's inbox (fan-out groups connections by it).
  const std::shared_ptr<ServiceInbox>& inbox() const { return inbox_; }

  // Service thread, when the connection is gone.
  void mark_closed() { open_.store(false, std::memory_order_release); }

 private:
  const ConnectionId id_;
  const Identity identity_;
  const std::shared_ptr<ServiceInbox> inbox_;
  std::atomic<bool> open_{true};
};

}  // namespace wsbridge
