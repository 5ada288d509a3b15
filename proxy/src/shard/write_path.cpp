// What a client is sent: the bounded outbound queue and its slow-consumer policy, the writes
// (straight to the socket where no extension needs frames one by one, else one lws_write per
// WRITEABLE), pings.
#include "shard/shard_parts.hpp"

#include <cstring>

namespace wsbridge {

void Shard::enqueue(Session& s, Frame frame) {
  if (s.closing()) return;
  const RouteConfig& route = *s.route;
  auto over = [&] {
    return s.queued_bytes + frame.size() > route.max_queued_bytes ||
           s.outbox.size() + 1 > route.max_queued_messages;
  };
  if (over() && route.slow_consumer == RouteConfig::SlowConsumer::kDropOldest) {
    // Make room by discarding the oldest droppable frames; keep everything else in order.
    for (auto it = s.outbox.begin(); it != s.outbox.end() && over();) {
      if (it->is_droppable()) {
        s.queued_bytes -= it->size();
        it = s.outbox.erase(it);
        ++s.dropped;
        s.metrics->dropped->inc();
      } else {
        ++it;
      }
    }
    if (over() && frame.is_droppable()) {  // still no room: this one goes instead
      ++s.dropped;
      s.metrics->dropped->inc();
      s.outbox_changed();
      return;
    }
  }
  if (over()) {
    WSB_LOG(kWarn) << "conn " << s.id << " is not reading: outbound queue over "
                   << route.max_queued_bytes << " bytes or " << route.max_queued_messages
                   << " messages, closing with 1013";
    s.outbox.clear();
    s.queued_bytes = 0;
    s.outbox_changed();
    s.metrics->queue_drops->inc();
    request_close(s, static_cast<std::uint16_t>(CloseCode::kTryAgainLater), "slow consumer", false);
    return;
  }
  s.queued_bytes += frame.size();
  s.outbox.push_back(std::move(frame));
  s.outbox_changed();
  s.transport->want_write();
}

int Shard::on_writeable(Session& s) {
  if (s.close_sent) return -1;
  s.in_flight.reset();  // the previous write has been taken over completely by now
  // The rest of a frame the socket took part of comes before anything else, pings included.
  if (s.partial) return write_direct(s);
  if (s.ping_due) {
    s.ping_due = false;
    // lws hides PONGs with an empty payload from the callback, so the ping carries one.
    unsigned char ping[LWS_PRE + 4] = {};
    std::memcpy(ping + LWS_PRE, "wsbp", 4);
    if (lws_write(s.wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 0) return -1;
    if (!s.outbox.empty() || s.close_after_queue) s.transport->want_write();
    return 0;
  }
  if (!s.outbox.empty() && s.coalesce_writes) return write_direct(s);
  if (!s.outbox.empty()) {
    // permessage-deflate: lws compresses frame by frame, one lws_write per WRITEABLE.
    s.in_flight = std::move(s.outbox.front());
    s.outbox.pop_front();
    const Frame& frame = *s.in_flight;
    s.queued_bytes -= frame.size();
    s.outbox_changed();
    const auto mode = frame.is_text() ? LWS_WRITE_TEXT : LWS_WRITE_BINARY;
    ++s.messages_out;
    s.bytes_out += frame.size();
    s.metrics->messages_out->inc();
    s.metrics->bytes_out->inc(frame.size());
    if (lws_write(s.wsi, frame.payload_with_headroom(), frame.size(), mode) < 0) {
      return -1;
    }
    after_write(s);
    return 0;
  }
  if (s.close_after_queue) {
    const PendingClose& c = *s.close_after_queue;
    return close_now(s, c.code, c.reason);
  }
  return 0;
}

// Connections without permessage-deflate: the queued frames go to the socket ourselves, header
// and shared payload as iovecs, many per system call (socket_writer.hpp). The kernel's send path
// costs about the same for 40 bytes as for 4 KiB, and a 1 MiB frame in 64 KiB lws_write pieces
// took one WRITEABLE round (a poll wake-up) each.
//
// lws still writes on this socket: our pings and close frames, and the PONGs and close replies it
// sends by itself from its POLLOUT handler, before our WRITEABLE callback. So:
// - what lws could not send yet (it keeps it and sends it before calling us again) goes first;
// - while a frame is partly written, reading is held: lws then parses no PING or close from the
//   client, so it has nothing of its own to answer in the middle of our frame; pings and closes
//   of ours wait in on_writeable until the frame is complete (close_now drops the connection
//   rather than put a close frame inside it).
int Shard::write_direct(Session& s) {
  if (lws_partial_buffered(s.wsi) != 0) {  // (lws' public name for lws_has_buffered_out)
    s.transport->want_write();
    return 0;
  }
  const bool was_held = s.reading_held_for_write;
  const SocketWriter::Result r =
      socket_writer_.write(lws_get_socket_fd(s.wsi), s.partial, s.outbox, kWriteBudgetBytes);
  s.queued_bytes -= r.dequeued_bytes;
  s.outbox_changed();
  s.messages_out += r.frames_done;
  s.bytes_out += r.payload_done;
  s.metrics->messages_out->inc(r.frames_done);
  s.metrics->bytes_out->inc(r.payload_done);
  if (r.status == SocketWriter::Status::kError) {
    WSB_LOG(kDebug) << "conn " << s.id << " write failed: " << std::strerror(r.error);
    return -1;  // no close frame: the socket is gone (or the stream is cut inside a frame)
  }
  // While reading is held the client's PONGs wait unread; a client that takes our bytes is alive.
  if (was_held && r.wire_bytes > 0) s.last_rx = SteadyClock::now();
  hold_reading_for_write(s, s.partial.has_value());
  after_write(s);
  return 0;
}

void Shard::hold_reading_for_write(Session& s, bool hold) {
  if (hold == s.reading_held_for_write) return;
  s.reading_held_for_write = hold;
  // A reason bit of its own: the adapter's pause_reading and the shutdown use lws' "user" bit,
  // and reading resumes only when no reason holds it.
  lws_rx_flow_control(
      s.wsi, (hold ? LWS_RXFLOW_REASON_APPLIES_DISABLE : LWS_RXFLOW_REASON_APPLIES_ENABLE) |
                 kWriteHoldRxReason);
}

void Shard::after_write(Session& s) {
  if (!s.outbox.empty() || s.partial || s.close_after_queue) s.transport->want_write();
  if (s.outbox.empty() && !s.partial && s.dropped > 0) {
    // Caught up: tell the adapter how much this client missed (it may queue a notice).
    const std::uint64_t dropped = std::exchange(s.dropped, 0);
    s.route->adapter->on_dropped(s.handle, dropped);
  }
}

}  // namespace wsbridge
