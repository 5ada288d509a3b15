// Draining before a restart (SIGTERM, POST /api/v1/drain; docs/DEPLOY.md): /healthz turns 503
// and new clients are refused at once, so the balancer's health check takes this instance out;
// after [server] drain_delay every client is closed with 1012 ("service restart") and told when
// to come back, each a different time, so a rolling restart causes no reconnection stampede.
#include "shard/shard_parts.hpp"

namespace wsbridge {

void Shard::request_drain(bool then_stop) {
  InboxCommand command;
  command.type = InboxCommand::Type::kDrain;
  command.then_stop = then_stop;
  inbox_->post(std::move(command));
}

void Shard::begin_drain(bool then_stop) {
  if (stopping_) return;
  if (drained_) {  // (POST /api/v1/drain already closed everyone: a SIGTERM now ends it)
    if (then_stop) begin_shutdown();
    return;
  }
  const bool first = !shared_.going_away.exchange(true);
  if (restart_close_at_) {  // (a drain is on: a SIGTERM now also ends the process after it)
    stop_after_restart_close_ = stop_after_restart_close_ || then_stop;
    return;
  }
  const auto now = SteadyClock::now();
  if (first && config_->drain_delay.count() > 0) {
    WSB_LOG(kInfo) << "draining: /healthz answers 503 and new clients are refused; closing "
                   << shared_.sessions.size() << " connection(s) with 1012 in "
                   << format_seconds(config_->drain_delay);
  }
  restart_close_at_ = now + config_->drain_delay;
  stop_after_restart_close_ = then_stop;
  close_for_restart_if_due(now);
  if (restart_close_at_) schedule_timer(std::min(config_->drain_delay, sweep_period_));
}

void Shard::close_for_restart_if_due(SteadyClock::time_point now) {
  if (!restart_close_at_ || now < *restart_close_at_) return;
  restart_close_at_.reset();
  if (stop_after_restart_close_) {
    begin_shutdown();  // (waits for in-flight work, then closes with 1012: finish_draining)
    return;
  }
  // Drained without stopping: every client goes now, after what is queued for it; this instance
  // stays up (its /healthz says 503) until it is stopped.
  drained_ = true;
  if (auto total = shared_.closing(sessions_.size())) {
    WSB_LOG(kInfo) << "drained: closing " << *total << " connection(s) with 1012";
  }
  for (auto& [id, session] : sessions_) {
    request_close(*session, kServiceRestart, restart_reason(), true);
  }
  for (auto& [id, transport] : fallback_sessions_) {
    if (!transport->carried()) transport->drop_within(std::chrono::seconds(0));
  }
}

std::string Shard::restart_reason() {
  const auto spread = config_->reconnect_spread.count();
  std::uniform_int_distribution<long long> pick(spread / 10, spread);
  return "service restart; retry_ms=" + std::to_string(pick(restart_jitter_));
}

}  // namespace wsbridge
