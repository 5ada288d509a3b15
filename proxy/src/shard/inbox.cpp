// Work handed to the service thread: commands from other threads (ServiceInbox) and the
// unmasked-frame guard's findings.
#include "fallback/session_request.hpp"
#include "shard/shard_parts.hpp"

namespace wsbridge {

void Shard::dispatch(InboxCommand&& command) {
  if (destroying_) return;
  if (command.type == InboxCommand::Type::kShutdown) {
    begin_drain(true);  // (with drain_delay = 0, the shutdown at once)
    return;
  }
  if (command.type == InboxCommand::Type::kDrain) {
    begin_drain(command.then_stop);
    return;
  }
  if (command.type == InboxCommand::Type::kReload) {
    apply_reload(std::move(command.config));
    return;
  }
  if (command.type == InboxCommand::Type::kReloadFollow) {
    follow_reload(std::move(command.config));
    return;
  }
  if (command.type == InboxCommand::Type::kFallback) {
    on_fallback_request(*command.fallback);
    return;
  }
  if (command.type == InboxCommand::Type::kAdoptSocket) {
    handed_sockets_.push_back(std::move(*command.socket));  // adopted from the loop
    return;
  }
  if (command.type == InboxCommand::Type::kCarrierWake) {
    want_carrier_write(command.connection);
    return;
  }
  if (command.type == InboxCommand::Type::kSendMany) {
    for (ConnectionId id : command.connections) {
      if (auto it = sessions_.find(id); it != sessions_.end()) {
        it->second->handle->handed_over(command.frame.size());  // (see ConnectionHandle::reserve)
        enqueue(*it->second, command.frame);
      }
    }
    return;
  }
  auto it = sessions_.find(command.connection);
  if (it == sessions_.end()) return;  // already closed: a stale id is a no-op
  Session& s = *it->second;
  if (command.type == InboxCommand::Type::kSend) {
    s.handle->handed_over(command.frame.size());  // (sent through the handle: see its send())
    enqueue(s, std::move(command.frame));
  } else if (command.type == InboxCommand::Type::kPauseReading ||
             command.type == InboxCommand::Type::kResumeReading) {
    const bool paused = command.type == InboxCommand::Type::kPauseReading;
    if (stopping_ || s.closing()) return;  // draining or closing: reading stays as it is
    if (paused != s.reading_paused) {
      s.reading_paused = paused;
      if (paused) s.stalled_since = SteadyClock::now();
      s.metrics->reading_paused->add(paused ? 1 : -1);
      s.transport->set_reading(!paused);
    }
  } else {
    request_close(s, command.close_code, std::move(command.close_reason), true);
  }
}

void Shard::on_unmasked_frame(int fd) {
  // Inside lws' read: only note it, and close from the next loop iteration.
  unmasked_senders_.push_back(fd);
  lws_cancel_service(context_);
}

void Shard::on_plaintext_waiting(int fd) {
  // Inside lws' read: serve_waiting_plaintext() hands it a POLLIN once lws is done with this one.
  plaintext_waiting_.push_back(fd);
  lws_cancel_service(context_);
}

void Shard::on_request_waiting(int fd) {
  // Inside lws' read: pause_waiting_requests() stops lws reading it from the next iteration
  // (until then a read finds nothing more).
  requests_waiting_.push_back(fd);
  lws_cancel_service(context_);
}

void Shard::pause_waiting_requests() {
  std::vector<int> fds;
  fds.swap(requests_waiting_);
  for (const int fd : fds) {
    // (Released meanwhile: lws reads on. A descriptor closed since has no watcher.)
    if (!mask_guard::request_waiting(fd)) continue;
    if (lws* wsi = wsi_from_fd(context_, fd)) lws_rx_flow_control(wsi, 0);
  }
}

void Shard::serve_waiting_plaintext() {
  std::vector<int> fds;
  fds.swap(plaintext_waiting_);
  for (const int fd : fds) {
    // As if poll() said the socket has data: lws reads, and OpenSSL (or the guard's replay)
    // returns what it holds. (A descriptor closed and reused since gets a read that finds
    // nothing: harmless.)
    lws_pollfd pollfd{};
    pollfd.fd = fd;
    pollfd.events = LWS_POLLIN;
    pollfd.revents = LWS_POLLIN;
    lws_service_fd(context_, &pollfd);
  }
}

void Shard::close_unmasked_senders() {
  if (unmasked_senders_.empty()) return;
  for (auto& [id, s] : sessions_) {
    const int fd = s->transport->descriptor();
    if (std::find(unmasked_senders_.begin(), unmasked_senders_.end(), fd) ==
        unmasked_senders_.end()) {
      continue;
    }
    const auto why = mask_guard::violation(fd).value_or(
        FrameMaskScanner::Violation{LWS_CLOSE_STATUS_PROTOCOL_ERR, "client frames must be masked"});
    WSB_LOG(kInfo) << "conn " << id << " broke the protocol (" << why.reason << "): closing with "
                   << why.code;
    // Answers to the valid frames before it still go out, then the close.
    request_close(*s, why.code, why.reason, true);
    // It sends nothing more that lws could read: do not wait long for its close reply.
    s->transport->drop_within(2s);
  }
  unmasked_senders_.clear();
}

void Shard::drain_inbox() {
  close_unmasked_senders();
  std::vector<InboxCommand> batch;
  inbox_->drain_into(batch);
  for (auto& command : batch) {
    // One command's failure must not drop the rest of the batch (a session's close, the answer
    // a relayed POST waits for), nor unwind into lws (callback.cpp says what -1 would do here).
    try {
      dispatch(std::move(command));
    } catch (const std::exception& e) {
      WSB_LOG(kError) << "error handling work handed to this service thread: " << e.what();
    }
  }
}

}  // namespace wsbridge
