// What a client is sent: the bounded outbound queue and its slow-consumer policy, one write per
// WRITEABLE (several frames batched where no extension needs them one by one), pings.
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
      return;
    }
  }
  if (over()) {
    WSB_LOG(kWarn) << "conn " << s.id << " is not reading: outbound queue over "
                   << route.max_queued_bytes << " bytes or " << route.max_queued_messages
                   << " messages, closing with 1013";
    s.outbox.clear();
    s.queued_bytes = 0;
    s.metrics->queue_drops->inc();
    request_close(s, static_cast<std::uint16_t>(CloseCode::kTryAgainLater), "slow consumer", false);
    return;
  }
  s.queued_bytes += frame.size();
  s.outbox.push_back(std::move(frame));
  lws_callback_on_writable(s.wsi);
}

int Shard::on_writeable(Session& s) {
  if (s.close_sent) return -1;
  s.in_flight.reset();  // the previous write has been taken over completely by now
  if (s.ping_due) {
    s.ping_due = false;
    // lws hides PONGs with an empty payload from the callback, so the ping carries one.
    unsigned char ping[LWS_PRE + 4] = {};
    std::memcpy(ping + LWS_PRE, "wsbp", 4);
    if (lws_write(s.wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 0) return -1;
    if (!s.outbox.empty() || s.close_after_queue) lws_callback_on_writable(s.wsi);
    return 0;
  }
  if (!s.outbox.empty() && s.coalesce_writes && s.outbox.size() >= 2) return write_batch(s);
  if (!s.outbox.empty()) {
    s.in_flight = std::move(s.outbox.front());
    s.outbox.pop_front();
    const Frame& frame = *s.in_flight;
    s.queued_bytes -= frame.size();
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

// Several queued frames in one write: the kernel's send path costs about the same for 40 bytes
// as for 4 KiB, so one system call per frame caps a server far below what batching reaches. The
// frames are complete server frames (unmasked, FIN), so lws sends them as raw bytes; only for
// connections without permessage-deflate (lws must compress those frame by frame).
int Shard::write_batch(Session& s) {
  constexpr std::size_t kMaxBatchBytes = 64 * 1024;
  constexpr std::size_t kMaxBatchFrames = 128;
  std::string& out = batch_buffer_;
  out.assign(LWS_PRE, '\0');
  std::size_t frames = 0;
  std::size_t bytes = 0;
  while (!s.outbox.empty() && frames < kMaxBatchFrames) {
    const Frame& f = s.outbox.front();
    const std::size_t size = f.size();
    if (frames > 0 && out.size() - LWS_PRE + size + 10 > kMaxBatchBytes) break;
    // RFC 6455 5.2: FIN + opcode, then the payload length in 7, 7+16 or 7+64 bits; no mask.
    out.push_back(static_cast<char>(0x80 | (f.is_text() ? 0x1 : 0x2)));
    if (size < 126) {
      out.push_back(static_cast<char>(size));
    } else if (size <= 0xffff) {
      out.push_back(static_cast<char>(126));
      out.push_back(static_cast<char>(size >> 8));
      out.push_back(static_cast<char>(size & 0xff));
    } else {
      out.push_back(static_cast<char>(127));
      for (int shift = 56; shift >= 0; shift -= 8) {
        out.push_back(static_cast<char>((static_cast<std::uint64_t>(size) >> shift) & 0xff));
      }
    }
    out.append(f.payload());
    s.queued_bytes -= size;
    bytes += size;
    ++frames;
    s.outbox.pop_front();
  }
  s.in_flight.reset();
  s.messages_out += frames;
  s.bytes_out += bytes;
  s.metrics->messages_out->inc(frames);
  s.metrics->bytes_out->inc(bytes);
  // lws copies what the kernel does not take and sends it before the next WRITEABLE.
  if (lws_write(s.wsi, reinterpret_cast<unsigned char*>(out.data()) + LWS_PRE, out.size() - LWS_PRE,
                LWS_WRITE_RAW) < 0) {
    return -1;
  }
  after_write(s);
  return 0;
}

void Shard::after_write(Session& s) {
  if (!s.outbox.empty() || s.close_after_queue) lws_callback_on_writable(s.wsi);
  if (s.outbox.empty() && s.dropped > 0) {
    // Caught up: tell the adapter how much this client missed (it may queue a notice).
    const std::uint64_t dropped = std::exchange(s.dropped, 0);
    s.route->adapter->on_dropped(s.handle, dropped);
  }
}

}  // namespace wsbridge
