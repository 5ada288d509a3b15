#include "shard/websocket_transport.hpp"

#include <libwebsockets.h>

#include <cerrno>
#include <cstring>

#include "recv_hook/mask_guard.hpp"
#include "shard/lws_request.hpp"
#include "wsbridge/log.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge {
namespace {

// The lws rx flow control reason bit reading is held with while a frame is partly written (lws
// itself uses bits 0, 6 and 7: LWS_RXFLOW_REASON_USER_BOOL, _HTTP_RXBUFFER, _H2_PPS_PENDING), so
// the adapter's pause_reading and the shutdown, on the "user" bit, are independent of it.
constexpr int kWriteHoldRxReason = 1 << 1;

}  // namespace

WebSocketTransport::WebSocketTransport(lws* wsi, std::string peer, SocketWriter& writer,
                                       shared_deflate::WireFormat format, bool inflates)
    : wsi_(wsi),
      peer_(std::move(peer)),
      writer_(writer),
      format_(format),
      inflates_(inflates),
      ssl_(lws_is_ssl(wsi) != 0 ? lws_get_ssl(wsi) : nullptr) {}

void WebSocketTransport::want_write() {
  lws_callback_on_writable(wsi_);
}

void WebSocketTransport::set_reading(bool on) {
  if (!on) was_paused_ = true;
  lws_rx_flow_control(wsi_, on ? 1 : 0);
}

// Outside lws' turn our bytes may not meet lws' own: nothing of lws' may wait to be sent
// (lws_partial_buffered), and lws may owe the client no answer (a PONG, a close reply) that it
// would write into the middle of a frame the socket takes only part of now.
bool WebSocketTransport::can_write_now() const {
  return !was_paused_ && lws_partial_buffered(wsi_) == 0 &&
         !mask_guard::answer_may_be_due(descriptor());
}

// (TLS: a record OpenSSL sealed holds at most 16 KiB.)
std::size_t WebSocketTransport::unsent_bytes() const {
  return (partial_ ? wire_size(partial_->frame, format_) - partial_->sent : 0) + tls_sealed_;
}

void WebSocketTransport::write_turn_began() {
  if (!was_paused_) mask_guard::answers_flushed(descriptor());
}

WriteTurn WebSocketTransport::write(FrameQueue& queue, std::size_t budget) {
  return write_to_socket(queue, budget);
}

bool WebSocketTransport::ping() {
  // lws hides PONGs with an empty payload from the callback, so the ping carries one.
  unsigned char ping[LWS_PRE + 4] = {};
  std::memcpy(ping + LWS_PRE, "wsbp", 4);
  return lws_write(wsi_, ping + LWS_PRE, 4, LWS_WRITE_PING) >= 0;
}

// Without an extension the queued frames go to the socket from here, header and shared payload
// as iovecs, many per system call (socket_writer.hpp). The kernel's send path costs about the
// same for 40 bytes as for 4 KiB, and a 1 MiB frame in 64 KiB lws_write pieces took one
// WRITEABLE round (a poll wake-up) each.
//
// lws still writes on this socket: our pings and close frames, and the PONGs and close replies it
// sends by itself from its POLLOUT handler, before our WRITEABLE callback. So:
// - what lws could not send yet (it keeps it and sends it before calling us again) goes first;
// - while a frame is partly written, reading is held: lws then parses no PING or close from the
//   client, so it has nothing of its own to answer in the middle of our frame; pings and closes
//   of the session wait until the frame is complete (mid_frame; a close decided by an error
//   inside the turn drops the connection rather than put a close frame inside it).
WriteTurn WebSocketTransport::write_to_socket(FrameQueue& queue, std::size_t budget) {
  WriteTurn turn;
  if (lws_partial_buffered(wsi_) != 0) {  // (lws' public name for lws_has_buffered_out)
    want_write();
    return turn;
  }
  const bool was_held = reading_held_;
  const SocketWriter::Result r =
      ssl_ != nullptr ? writer_.write_tls(ssl_, tls_sealed_, partial_, queue, budget, format_)
                      : writer_.write(lws_get_socket_fd(wsi_), partial_, queue, budget, format_);
  turn.frames_done = r.frames_done;
  turn.payload_done = r.payload_done;
  turn.dequeued_bytes = r.dequeued_bytes;
  if (r.status == SocketWriter::Status::kError) {
    WSB_LOG(kDebug) << "write to " << peer_ << " failed: "
                    << (r.error == EPROTO && ssl_ != nullptr ? "TLS error"
                                                             : text::errno_text(r.error));
    turn.failed = true;  // no close frame: the socket is gone (or the stream is cut inside a frame)
    return turn;
  }
  // While reading is held the client's PONGs wait unread; a client that takes our bytes is alive.
  turn.peer_took_bytes = was_held && r.wire_bytes > 0;
  hold_reading(mid_frame());
  return turn;
}

void WebSocketTransport::hold_reading(bool hold) {
  if (hold == reading_held_) return;
  reading_held_ = hold;
  // Reading resumes only when no reason holds it.
  lws_rx_flow_control(
      wsi_, (hold ? LWS_RXFLOW_REASON_APPLIES_DISABLE : LWS_RXFLOW_REASON_APPLIES_ENABLE) |
                kWriteHoldRxReason);
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

InboundFragment WebSocketTransport::fragment(const void* in, std::size_t len) {
  InboundFragment f;
  f.bytes = std::string_view(static_cast<const char*>(in), len);
  f.binary = lws_frame_is_binary(wsi_) != 0;
  f.final = lws_is_final_fragment(wsi_) != 0;
  f.expected = lws_remaining_packet_payload(wsi_);
  // The guard below lws saw this message begin and took its RSV1 off (frame_mask_scanner.hpp).
  if (inflates_ && !in_message_) f.compressed = mask_guard::take_compressed(descriptor());
  in_message_ = !f.final;
  return f;
}

}  // namespace wsbridge
