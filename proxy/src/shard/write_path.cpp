// What a client is sent: the bounded outbound queue and its slow-consumer policy, and the write
// turn: the rest of a partly written frame, a ping, queued frames (written by the transport), or
// the close that waited for the queue.
#include "shard/shard_parts.hpp"

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
  if (s.queued_bytes > route.queue_high_water_bytes || s.handle->take_over_high_water_told()) {
    s.drained_notice_due = true;
  }
  if (s.reading_paused && s.outbox.empty()) s.stalled_since = SteadyClock::now();
  s.outbox.push_back(std::move(frame));
  s.outbox_changed();
  want_write_soon(s);
}

// Asking lws for a write turn turns POLLOUT on and, after it, off again: two epoll_ctl calls
// per write on the event loop (server/event_loop.hpp), where the socket almost always takes the
// bytes at once. So frames queued during a loop turn are written at its end instead, as many
// per session as were queued in the turn (one fan-out message to thousands of sessions, or
// several to one, each a single system call); only a socket that takes part of them, or a
// transport that cannot write outside its turn now, waits for POLLOUT.
void Shard::want_write_soon(Session& s) {
  if (s.write_soon) return;
  if (!s.transport->can_write_now()) {
    s.transport->want_write();
    return;
  }
  s.write_soon = true;
  writes_soon_.push_back(s.id);
}

bool Shard::write_soon() {
  bool lws_has_work = false;
  // An adapter told of a write (on_drained, on_dropped) may queue more: those are written in the
  // next pass, a few passes at most before the rest waits for the usual write turn.
  for (int pass = 0; pass < 4 && !writes_soon_.empty(); ++pass) {
    std::vector<ConnectionId> ids;
    ids.swap(writes_soon_);
    for (const ConnectionId id : ids) {
      const auto it = sessions_.find(id);
      if (it == sessions_.end()) continue;
      Session& s = *it->second;
      s.write_soon = false;
      Transport& transport = *s.transport;
      if (s.close_sent || s.ping_due || !transport.can_write_now()) {
        transport.want_write();  // the write turn does what is due in its order
        continue;
      }
      const bool was_mid_frame = transport.mid_frame();
      if (write_queued(s) != 0) {
        transport.drop_within(std::chrono::seconds(0));  // the socket is gone (an lws timer)
        lws_has_work = true;
        continue;
      }
      // The rest of a frame went out, so reading resumed: lws may have bytes to parse.
      if (was_mid_frame && !transport.mid_frame()) lws_has_work = true;
    }
  }
  for (const ConnectionId id : writes_soon_) {
    const auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;
    it->second->write_soon = false;
    it->second->transport->want_write();
  }
  writes_soon_.clear();
  return lws_has_work;
}

int Shard::on_writeable(Session& s) {
  if (s.close_sent) return -1;
  Transport& transport = *s.transport;
  // The rest of a frame the peer took part of comes before anything else, pings included.
  if (!transport.mid_frame()) {
    if (s.ping_due) {
      s.ping_due = false;
      if (!transport.ping()) return -1;
      if (!s.outbox.empty() || s.close_after_queue) transport.want_write();
      return 0;
    }
    if (s.outbox.empty()) {
      if (s.close_after_queue) {
        const PendingClose& c = *s.close_after_queue;
        return close_now(s, c.code, c.reason);
      }
      return 0;
    }
  }
  return write_queued(s);
}

// The transport takes what it can from the front of the queue (all of it that the socket takes,
// or one frame for lws to compress); the session counts it.
int Shard::write_queued(Session& s) {
  const WriteTurn turn = s.transport->write(s.outbox, kWriteBudgetBytes);
  s.queued_bytes -= turn.dequeued_bytes;
  s.outbox_changed();
  s.messages_out += turn.frames_done;
  s.bytes_out += turn.payload_done;
  s.metrics->messages_out->inc(turn.frames_done);
  s.metrics->bytes_out->inc(turn.payload_done);
  if (turn.failed) return -1;
  // A client whose reading is held or paused cannot show it is alive by sending: taking bytes does.
  if (turn.peer_took_bytes || (s.reading_paused && turn.dequeued_bytes > 0)) {
    s.last_rx = SteadyClock::now();
  }
  after_write(s);
  return 0;
}

void Shard::after_write(Session& s) {
  const bool mid_frame = s.transport->mid_frame();
  if (!s.outbox.empty() || mid_frame || s.close_after_queue) s.transport->want_write();
  if (s.outbox.empty() && !mid_frame && s.dropped > 0) {
    // Caught up: tell the adapter how much this client missed (it may queue a notice).
    const std::uint64_t dropped = std::exchange(s.dropped, 0);
    s.route->adapter->on_dropped(s.handle, dropped);
  }
  if (s.drained_notice_due && s.queued_bytes <= s.route->queue_high_water_bytes / 2 &&
      !s.closing()) {
    // Under half the high-water mark again: an adapter holding its source back may go on.
    s.drained_notice_due = false;
    s.route->adapter->on_drained(s.handle);
  }
}

}  // namespace wsbridge
