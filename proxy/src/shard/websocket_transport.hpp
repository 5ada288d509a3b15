// The first Transport: a WebSocket connection of libwebsockets, plain or (later) TLS. Its write
// turn is lws' SERVER_WRITEABLE; its inbound fragments are lws' RECEIVE callbacks.
#pragma once

#include <string>

#include "session/transport.hpp"

struct lws;

namespace wsbridge {

class WebSocketTransport final : public Transport {
 public:
  explicit WebSocketTransport(lws* wsi);

  std::string_view kind() const override { return "websocket"; }
  const std::string& peer_address() const override { return peer_; }
  void want_write() override;
  void set_reading(bool on) override;
  void close(std::uint16_t code, std::string_view reason) override;
  void drop_within(std::chrono::seconds grace) override;
  int descriptor() const override;

  // What lws' RECEIVE callback handed over, as a fragment (inside that callback only).
  InboundFragment fragment(const void* in, std::size_t len) const;
  // The connection itself, for the WebSocket write path (shard/write_path.cpp).
  lws* wsi() const { return wsi_; }

 private:
  lws* const wsi_;
  const std::string peer_;
};

}  // namespace wsbridge
