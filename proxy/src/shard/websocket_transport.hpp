// The first Transport: a WebSocket connection of libwebsockets, plain or (later) TLS. Its write
// turn is lws' SERVER_WRITEABLE; its inbound fragments are lws' RECEIVE callbacks.
#pragma once

#include <optional>
#include <string>

#include "session/transport.hpp"
#include "shard/socket_writer.hpp"

struct lws;

namespace wsbridge {

class WebSocketTransport final : public Transport {
 public:
  // `peer`: the client's address (Shard::client_address: behind a trusted proxy, the one it
  // names). `writer`: the shard's write scratch (it outlives its sessions). `format`: which
  // shared compressed variant its frames are written as; `inflates`: shared permessage-deflate
  // was agreed, so its messages may arrive compressed.
  WebSocketTransport(lws* wsi, std::string peer, SocketWriter& writer,
                     shared_deflate::WireFormat format = {}, bool inflates = false);

  std::string_view kind() const override { return "websocket"; }
  const std::string& peer_address() const override { return peer_; }
  void want_write() override;
  void set_reading(bool on) override;
  WriteTurn write(FrameQueue& queue, std::size_t budget) override;
  bool can_write_now() const override;
  void write_turn_began() override;
  bool mid_frame() const override { return partial_.has_value() || tls_sealed_ > 0; }
  bool reading_held() const override { return reading_held_; }
  std::size_t unsent_bytes() const override;
  bool ping() override;
  void close(std::uint16_t code, std::string_view reason) override;
  void drop_within(std::chrono::seconds grace) override;
  int descriptor() const override;

  // What lws' RECEIVE callback handed over, as a fragment (inside that callback only).
  InboundFragment fragment(const void* in, std::size_t len);

 private:
  WriteTurn write_to_socket(FrameQueue& queue, std::size_t budget);
  void hold_reading(bool hold);

  lws* const wsi_;
  const std::string peer_;
  SocketWriter& writer_;
  const shared_deflate::WireFormat format_;
  const bool inflates_;
  bool in_message_ = false;  // inbound: between a message's first and final fragments
  // Written by us (no extension): the frame the socket took part of, whose rest goes out before
  // anything else. While it is there, reading is held, so lws parses no PING or close it would
  // answer in the middle of it.
  std::optional<PartialFrame> partial_;
  bool reading_held_ = false;
  // The adapter paused reading at least once: lws may then hold bytes it read and has not
  // parsed (a PING among them), which the mask guard counted as answered at a write turn in
  // between. Such a connection is written in write turns only.
  bool was_paused_ = false;
  // wss://: the connection's SSL (else null), and the bytes of a record OpenSSL sealed that the
  // socket has not taken yet (socket_writer.hpp, write_tls).
  SSL* const ssl_;
  std::size_t tls_sealed_ = 0;
};

}  // namespace wsbridge
