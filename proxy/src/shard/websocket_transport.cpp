#include "shard/websocket_transport.hpp"

#include <libwebsockets.h>

#include "shard/lws_request.hpp"

namespace wsbridge {

WebSocketTransport::WebSocketTransport(lws* wsi) : wsi_(wsi), peer_(wsbridge::peer_address(wsi)) {}

void WebSocketTransport::want_write() {
  lws_callback_on_writable(wsi_);
}

void WebSocketTransport::set_reading(bool on) {
  lws_rx_flow_control(wsi_, on ? 1 : 0);
}

void WebSocketTransport::close(std::uint16_t code, std::string_view reason) {
  // lws sends this close frame when the callback returns -1 (close_now does).
  lws_close_reason(wsi_, static_cast<lws_close_status>(code),
                   reinterpret_cast<unsigned char*>(const_cast<char*>(reason.data())),
                   reason.size());
}

void WebSocketTransport::drop_within(std::chrono::seconds grace) {
  const auto seconds = static_cast<int>(grace.count());
  lws_set_timeout(wsi_, PENDING_TIMEOUT_USER_OK, seconds <= 0 ? LWS_TO_KILL_ASYNC : seconds);
}

int WebSocketTransport::descriptor() const {
  return lws_get_socket_fd(wsi_);
}

InboundFragment WebSocketTransport::fragment(const void* in, std::size_t len) const {
  InboundFragment f;
  f.bytes = std::string_view(static_cast<const char*>(in), len);
  f.binary = lws_frame_is_binary(wsi_) != 0;
  f.final = lws_is_final_fragment(wsi_) != 0;
  f.expected = lws_remaining_packet_payload(wsi_);
  return f;
}

}  // namespace wsbridge
