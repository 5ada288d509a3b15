// [limits] unread_output_bytes: a bound on the output queued for clients that do not read it,
// over all of them. Each route bounds one connection's queue (max_queued_bytes), and adapters
// whose output answers the client pause reading from it past the high-water mark (echo, http,
// the MQTT pass-through), so one client that sends without reading holds at most about that.
// Many of them hold that many times over: an http route's small requests can ask for large
// answers, a pass-through browser can subscribe to a busy topic, and 1,000 connections from one
// address at 8 MiB each are 8 GB. The inbound side has had its process-wide bound
// (inbound_bytes_in_flight); this is the outbound one. Once per timer tick the output of the
// sessions nobody reads now is summed: those whose reading is paused, and the fallback sessions
// no request carries (a client that vanished keeps its session, and its queue, for the reconnect
// window: many such sessions, subscribed to a busy topic, held up to max_queued_bytes each).
// A frame the socket took part of counts too, for a client that took none of it since the last
// tick. Past this shard's share the largest are closed with 1013 until the rest fits, as the
// inbound bound closes the largest holders first. Between two ticks (at most a second) a paused
// client's queue grows by no more than what it asked for before it was paused.
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include "shard/shard_parts.hpp"

namespace wsbridge {

bool Shard::uncarried_fallback(const Session& s) const {
  const auto fallback = fallback_sessions_.find(s.id);
  return fallback != fallback_sessions_.end() && !fallback->second->carried();
}

// A client that stopped reading in the middle of a large frame holds it outside its queue (the
// transport's, mid-frame), and no adapter pauses it: the transport stops reading from it until
// the frame is out, so the adapter is asked nothing more. Such a frame counts, with what is
// queued behind it, once the peer took none of it for a tick; a reader that is only slow
// takes some of it between two ticks (a second apart at most).
void Shard::gather_unread_output(Session& s, bool progressed) {
  const std::size_t unsent = s.transport->unsent_bytes();
  const bool stalled_mid_frame = unsent > 0 && unsent == s.unsent_at_last_tick && !progressed;
  s.unsent_at_last_tick = unsent;
  const std::size_t bytes = s.queued_bytes + unsent;
  if (bytes == 0 || s.closing()) return;
  if (s.reading_paused || stalled_mid_frame || uncarried_fallback(s)) {
    unread_output_.push_back({bytes, s.id});
  }
}

// A socket whose send queue holds megabytes is writable again only once much of it drained (a
// third of its send buffer free): a slow reader takes bytes for many seconds with no write turn
// to show it (a client reading 150 KB/s of a 3.5 MB delivery was closed for its MQTT keepalive
// after 10 s). The queue's size is looked at once a tick instead.
bool Shard::peer_took_queued_bytes(Session& s) {
  const int fd = s.transport->descriptor();
  int queued = 0;
  if (fd < 0 || ioctl(fd, SIOCOUTQ, &queued) != 0) {
    s.kernel_queued_at_last_tick = -1;
    return false;
  }
  // (More may have been written meanwhile: then the write turn showed it was taking bytes.)
  const bool took = s.kernel_queued_at_last_tick >= 0 && queued < s.kernel_queued_at_last_tick;
  s.kernel_queued_at_last_tick = queued;
  return took;
}

void Shard::bound_unread_output() {
  if (unread_output_.empty()) return;
  std::size_t total = 0;
  for (const UnreadOutput& unread : unread_output_) total += unread.bytes;
  // One client at its own bound always fits: it is that route's business, not the others'.
  std::size_t largest_route_bound = 0;
  for (const auto& route : config_->routes) {
    largest_route_bound = std::max(largest_route_bound, route.max_queued_bytes);
  }
  const std::size_t share = share_of(config_->limits.unread_output_bytes, largest_route_bound);
  if (total > share) {
    std::sort(unread_output_.begin(), unread_output_.end(),
              [](const UnreadOutput& a, const UnreadOutput& b) { return a.bytes > b.bytes; });
    for (const UnreadOutput& unread : unread_output_) {
      if (total <= share) break;
      total -= unread.bytes;
      // (Gathered this tick from the sessions not closing, none erased since.)
      const auto it = sessions_.find(unread.id);
      if (it == sessions_.end()) continue;
      Session& s = *it->second;
      if (unread_output_warnings_.due()) {
        WSB_LOG(kWarn) << "conn " << s.id << " (" << s.handle->identity().remote_address
                       << ") closed with 1013: it reads nothing of its " << unread.bytes
                       << " queued bytes, and the clients of this thread that read nothing hold "
                       << "more than its " << share << " ([limits] unread_output_bytes); "
                       << unread_output_warnings_.occurrences()
                       << " connection(s) closed so since the last such line";
      }
      close_not_reading(s);
    }
  }
  unread_output_.clear();
}

void Shard::close_not_reading(Session& s) {
  s.metrics->queue_drops->inc();
  // (Its queue goes now.)
  request_close(s, static_cast<std::uint16_t>(CloseCode::kTryAgainLater), "not reading", false);
  // A fallback session no request carries is told by its next one, within the reconnect window.
  // Else it does not read: the close may never leave, so it is dropped soon after.
  if (!uncarried_fallback(s)) s.transport->drop_within(std::chrono::seconds(2));
}

}  // namespace wsbridge
