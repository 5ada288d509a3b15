// Every metric family the core registers, in one place: the per-route connection and message
// metrics, and the counters of refusals, authentication failures and reloads. (Adapters and the
// HTTP client register their own families next to the code that moves them.)
#pragma once

#include <string>
#include <string_view>

#include "wsbridge/metrics.hpp"

namespace wsbridge {

// The metrics of one route, looked up once per shard and route (the registry hands every shard
// the same series).
struct RouteMetrics {
  explicit RouteMetrics(const std::string& route) {
    auto& r = metrics::Registry::global();
    const metrics::Labels l = {{"route", route}};
    open = &r.gauge("wsbridge_connections", "WebSocket connections open now", l);
    opened = &r.counter("wsbridge_connections_total", "WebSocket connections accepted", l);
    messages_in = &r.counter("wsbridge_messages_received_total", "messages from clients", l);
    messages_out = &r.counter("wsbridge_messages_sent_total", "messages to clients", l);
    bytes_in = &r.counter("wsbridge_received_bytes_total", "message bytes from clients", l);
    bytes_out = &r.counter("wsbridge_sent_bytes_total", "message bytes to clients", l);
    queue_drops = &r.counter("wsbridge_queue_overflow_closes_total",
                             "connections closed (1013) because they stopped reading", l);
    rate_limited = &r.counter("wsbridge_rate_limited_messages_total",
                              "messages refused by the route's rate limit", l);
    dropped = &r.counter("wsbridge_dropped_messages_total",
                         "droppable messages discarded for slow clients (drop_oldest)", l);
    reading_paused = &r.gauge("wsbridge_connections_reading_paused",
                              "connections not read from now: their upstream is behind", l);
  }
  metrics::Gauge* open;
  metrics::Counter* opened;
  metrics::Counter* messages_in;
  metrics::Counter* messages_out;
  metrics::Counter* bytes_in;
  metrics::Counter* bytes_out;
  metrics::Counter* queue_drops;
  metrics::Counter* rate_limited;
  metrics::Counter* dropped;
  metrics::Gauge* reading_paused;
};

namespace core_metrics {

// wsbridge_connections_refused_total{reason}: an upgrade refused before the 101.
void upgrade_refused(std::string_view reason);
// wsbridge_auth_failures_total{reason}: an upgrade refused by authentication or authorization.
void auth_failed(std::string_view reason);
// wsbridge_config_reloads_total{outcome}: "ok", "refused" (needs a restart), "invalid".
void config_reload(std::string_view outcome);

}  // namespace core_metrics
}  // namespace wsbridge
