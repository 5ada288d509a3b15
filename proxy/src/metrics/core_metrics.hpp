// Every metric family the core registers, in one place: the per-route connection and message
// metrics, the HTTP client's per-backend metrics, and the counters of refusals, authentication
// failures and reloads. (Adapters register their own families next to the code that moves them.)
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
    inbound_budget_closes =
        &r.counter("wsbridge_inbound_budget_closes_total",
                   "connections closed (1013) because unfinished input held by the server was at "
                   "[limits] inbound_bytes_in_flight",
                   l);
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
  metrics::Counter* inbound_budget_closes;
  metrics::Counter* rate_limited;
  metrics::Counter* dropped;
  metrics::Gauge* reading_paused;
};

// The metrics of one HTTP backend of the core's HTTP client, looked up once per pool (every
// shard's pool of a backend shares the series).
struct BackendMetrics {
  explicit BackendMetrics(const std::string& backend) {
    auto& r = metrics::Registry::global();
    const metrics::Labels l = {{"backend", backend}};
    latency =
        &r.histogram("wsbridge_http_backend_request_seconds",
                     "time from sending a request to its backend to the complete response", l);
    connections = &r.gauge("wsbridge_http_backend_connections",
                           "connections open to the backend (idle or busy)", l);
    connects = &r.counter("wsbridge_http_backend_connects_total",
                          "connections opened to the backend (keep-alive reuse keeps this low)", l);
  }
  metrics::Histogram* latency;
  metrics::Gauge* connections;
  metrics::Counter* connects;
};

namespace core_metrics {

// wsbridge_connections_refused_total{reason}: an upgrade refused before the 101.
void upgrade_refused(std::string_view reason);
// wsbridge_auth_failures_total{reason}: an upgrade refused by authentication or authorization.
void auth_failed(std::string_view reason);
// wsbridge_config_reloads_total{outcome}: "ok", "refused" (needs a restart), "invalid".
void config_reload(std::string_view outcome);
// A reload of a configuration with TLS listeners: "ok" (new handshakes get the certificates it
// read) or "refused" (a file failed its checks, or the reload was refused; the old ones stay).
void tls_certificate_reload(std::string_view result);
// wsbridge_http_backend_requests_total{backend,outcome}: a request to an HTTP backend ended
// ("ok": any HTTP status; else the failure).
void backend_request(std::string_view backend, std::string_view outcome);
// wsbridge_instance_info{instance_id} 1: this instance among several (join on it; the scraper's
// own "instance" label names the target, so ours is not added to every series).
void instance_info(std::string_view instance_id);
// wsbridge_cluster_messages_total{direction="in|out",result}: control messages between the
// instances; "in" results: "accepted", "rejected" (bad seal, stale, replayed), "malformed".
void cluster_message(std::string_view direction, std::string_view result);
// wsbridge_cluster_peers_up: the other instances this one hears as up, whose answers its
// cluster-wide lists wait for (a cluster shrinking, or an instance cut off from the others).
void cluster_peers_up(std::size_t count);

}  // namespace core_metrics
}  // namespace wsbridge
