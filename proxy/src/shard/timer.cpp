// The one timer per context: handshake deadlines, pings, idle timeouts, token expiry, close
// deadlines, held upgrades that were not answered, and the HTTP client's sweep.
#include "shard/shard_parts.hpp"

#include "handshake/upgrade_hold.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge {

namespace {

// lws completes some transactions without a callback of ours (HEAD of a static file, say), so a
// request pipelined behind one can wait decrypted in OpenSSL's buffer (TLS) or in the guard's
// replay with no POLLIN to tell of it: the connections between two requests are looked at once
// per tick.
void look_for_waiting_plaintext(const lws_dll2_owner_t& awaiting, std::vector<int>& waiting) {
  lws_start_foreach_dll(struct lws_dll2*, link, awaiting.head) {
    lws* wsi = reinterpret_cast<RequestDeadline*>(link)->wsi;  // link is its first member
    if (input_waits_unseen(wsi)) waiting.push_back(lws_get_socket_fd(wsi));
  }
  lws_end_foreach_dll(link);
}

}  // namespace

void Shard::schedule_timer(std::chrono::milliseconds delay) {
  lws_sul_schedule(
      context_, 0, &timer_->sul,
      [](lws_sorted_usec_list_t* sul) { reinterpret_cast<Timer*>(sul)->shard->on_timer(); },
      std::chrono::duration_cast<std::chrono::microseconds>(delay).count());
}

void Shard::expect_request(ConnectionData& data) {
  lws_dll2_remove(&data.deadline.link);
  data.deadline.since = SteadyClock::now();
  lws_dll2_add_tail(&data.deadline.link, &timer_->awaiting_request);
}

void Shard::request_arrived(ConnectionData& data) {
  lws_dll2_remove(&data.deadline.link);
}

void Shard::drop_late_requests(SteadyClock::time_point now) {
  // Oldest first: the first one still in time ends the walk.
  while (lws_dll2_t* head = lws_dll2_get_head(&timer_->awaiting_request)) {
    auto* late = reinterpret_cast<RequestDeadline*>(head);  // link is its first member
    if (now - late->since < config_->limits.handshake_timeout) break;
    lws_dll2_remove(head);
    WSB_LOG(kDebug) << "dropping a connection that did not finish its request in time";
    lws_set_timeout(late->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
  }
}

void Shard::on_timer() {
  const auto now = SteadyClock::now();
  drop_late_requests(now);
  look_for_waiting_plaintext(timer_->awaiting_request, plaintext_waiting_);
  tick_fallback_sessions(now);
  for (auto& [id, s] : sessions_) {
    if (s->closing()) {
      // A decided close that lws has not completed: end it for sure.
      if (s->close_deadline && now >= *s->close_deadline) {
        WSB_LOG(kInfo) << "conn " << id << " did not finish closing in time: dropping it";
        s->close_deadline = now + kImmediateCloseGrace;  // (asked once per grace period)
        s->transport->drop_within(0s);
      }
      continue;
    }
    s->outbox.release_memory();  // (no-op unless empty) idle connections hold no queue storage
    // A client whose reading is paused or held cannot show it is alive by sending: taking bytes
    // of its output does, also those the kernel already holds.
    bool progressed = false;
    if (s->reading_paused || s->transport->reading_held()) {
      progressed = peer_took_queued_bytes(*s);
      if (progressed) s->last_rx = now;
    } else {
      s->kernel_queued_at_last_tick = -1;
    }
    if (s->expires_at && std::chrono::system_clock::now() > *s->expires_at) {
      WSB_LOG(kInfo) << "conn " << id << " token expired: closing with 1008";
      s->expires_at.reset();
      request_close(*s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "token expired", false);
    } else if (s->mqtt_refusal && now - s->opened_at >= std::chrono::seconds(5)) {
      request_close(*s, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                    std::string(text::utf8_prefix(*s->mqtt_refusal, 120)), false);
    } else if (!s->reading_paused && !stopping_ && now - s->last_rx >= s->route->idle_timeout) {
      // (A paused client cannot show it is alive: its PONGs wait unread behind its messages.)
      WSB_LOG(kDebug) << "conn " << id << " idle for " << format_seconds(now - s->last_rx);
      request_close(*s, LWS_CLOSE_STATUS_GOINGAWAY, "idle timeout", false);
      // A silent peer may never make the socket writable again: drop it for sure soon after.
      s->transport->drop_within(2s);
    } else if (const auto waited = now - std::max(s->last_rx, s->stalled_since);
               s->reading_paused && !stopping_ && s->output_waiting() &&
               waited >= s->route->idle_timeout) {
      // Paused because it does not read what it is sent (its echoes, its answers), and it took
      // none of it for idle_timeout: it is gone or it is holding our memory. (Paused with
      // nothing to write, it is only waiting for its upstream.)
      WSB_LOG(kInfo) << "conn " << id << " took nothing of its " << s->queued_bytes
                     << " queued bytes for " << format_seconds(waited)
                     << " while its reading was paused: closing with 1013";
      close_not_reading(*s);
    } else if (now - s->last_ping >= s->route->ping_interval) {
      s->last_ping = now;
      s->ping_due = true;
      s->transport->want_write();
    }
    // (After the closes above, which let go of their queues: only what is still held counts.)
    gather_unread_output(*s, progressed);
  }
  bound_unread_output();
  // Held upgrades whose adapter did not decide within the handshake timeout.
  for (auto it = held_.begin(); it != held_.end();) {
    if (it->second.verdict || now - it->second.since < config_->limits.handshake_timeout) {
      ++it;
      continue;
    }
    WSB_LOG(kWarn) << "admission check did not answer within the handshake timeout: 504";
    core_metrics::upgrade_refused("admission_timeout");
    upgrade_hold::reply_and_close(it->second.fd, 504, "the admission check did not answer in time",
                                  it->second.ssl, own_answer_headers(it->second.vhost));
    it = held_.erase(it);
  }
  config_->http_client->sweep(index_);
  for (const auto& old : retired_configs_) old->http_client->sweep(index_);
  if (!retired_configs_.empty()) release_retired_configs(false);
  if (stopping_ && (now >= shutdown_deadline_ || (draining_ && now >= drain_deadline_))) {
    lws_cancel_service(context_);
  }
  close_for_restart_if_due(now);
  auto next = sweep_period_;
  if (restart_close_at_) {
    next = std::min(next, std::chrono::ceil<std::chrono::milliseconds>(*restart_close_at_ - now));
  }
  schedule_timer(next);
}

std::string format_seconds(SteadyClock::duration d) {
  const double s = std::chrono::duration<double>(d).count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3fs", s);
  return buf;
}

// Closes from inside the session's own callback: records how it ended, hands lws the close
// frame's code and reason, and returns the -1 the callback must return.
int close_now(Session& s, std::uint16_t code, const std::string& reason) {
  s.close_info = CloseInfo{code, reason, false};
  s.close_sent = true;
  s.handle->mark_closing();
  if (!s.close_deadline) s.close_deadline = SteadyClock::now() + kImmediateCloseGrace;
  if (s.transport->mid_frame()) {
    // (Only an error inside WRITEABLE gets here with a frame partly written.) A close frame now
    // would land inside that frame: the connection is dropped without one.
    s.close_info.code = static_cast<std::uint16_t>(CloseCode::kAbnormal);
    return -1;
  }
  s.transport->close(code, reason);
  return -1;
}

}  // namespace wsbridge
