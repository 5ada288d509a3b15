#include "metrics/core_metrics.hpp"

namespace wsbridge::core_metrics {

void upgrade_refused(std::string_view reason) {
  metrics::Registry::global()
      .counter("wsbridge_connections_refused_total", "WebSocket upgrades refused, by reason",
               {{"reason", std::string(reason)}})
      .inc();
}

void auth_failed(std::string_view reason) {
  metrics::Registry::global()
      .counter("wsbridge_auth_failures_total",
               "upgrades refused by authentication or authorization, by reason",
               {{"reason", std::string(reason)}})
      .inc();
}

void config_reload(std::string_view outcome) {
  metrics::Registry::global()
      .counter("wsbridge_config_reloads_total", "configuration reloads (SIGHUP), by outcome",
               {{"outcome", std::string(outcome)}})
      .inc();
}

void instance_info(std::string_view instance_id) {
  metrics::Registry::global()
      .gauge("wsbridge_instance_info", "this wsbridge instance ([server] instance_id)",
             {{"instance_id", std::string(instance_id)}})
      .set(1);
}

void cluster_message(std::string_view direction, std::string_view result) {
  metrics::Registry::global()
      .counter("wsbridge_cluster_messages_total",
               "control messages between the instances ([cluster]), by direction and result",
               {{"direction", std::string(direction)}, {"result", std::string(result)}})
      .inc();
}

void cluster_peers_up(std::size_t count) {
  metrics::Registry::global()
      .gauge("wsbridge_cluster_peers_up",
             "the other instances this one hears as up ([cluster]): its cluster-wide lists wait "
             "for their answers")
      .set(static_cast<std::int64_t>(count));
}

void tls_certificate_reload(std::string_view result) {
  metrics::Registry::global()
      .counter("wsbridge_tls_certificate_reloads_total",
               "reloads of TLS listener certificates (SIGHUP or tls.watch), by result",
               {{"result", std::string(result)}})
      .inc();
}

void backend_request(std::string_view backend, std::string_view outcome) {
  metrics::Registry::global()
      .counter("wsbridge_http_backend_requests_total",
               "requests to HTTP backends, by outcome (ok: any HTTP status)",
               {{"backend", std::string(backend)}, {"outcome", std::string(outcome)}})
      .inc();
}

}  // namespace wsbridge::core_metrics
