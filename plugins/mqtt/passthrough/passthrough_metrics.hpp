// The metrics of one pass-through route (docs/CONFIG.md lists them).
#pragma once

#include <string>

#include "wsbridge/metrics.hpp"

namespace wsbridge::mqtt {

struct PassthroughMetrics {
  metrics::Gauge& connections;            // browsers with a broker connection (or connecting)
  metrics::Counter& packets_from_client;  // relayed to the broker
  metrics::Counter& packets_from_broker;  // relayed to the browser
  metrics::Counter& denied_subscribe;     // filters refused in a SUBACK
  metrics::Counter& subscription_quota;   // filters refused: the connection's bounds were reached
  metrics::Counter& denied_publish;       // PUBLISHes (and wills) kept from the broker
  metrics::Counter& denied_delivery;      // PUBLISHes from the broker kept from the browser
  metrics::Counter& oversized_delivery;   // ... for being over max_packet_bytes (MQTT 3.1.1)
  metrics::Counter& refused_connect;      // CONNECTs refused (credentials, will, protocol)
  metrics::Counter& broker_unavailable;   // broker connections that failed or dropped

  static PassthroughMetrics for_route(const std::string& path) {
    auto& r = metrics::Registry::global();
    const auto kind = [&](const char* k) -> metrics::Counter& {
      return r.counter("wsbridge_mqtt_passthrough_denied_total",
                       "MQTT pass-through packets refused by the route's policy",
                       {{"route", path}, {"kind", k}});
    };
    const auto direction = [&](const char* d) -> metrics::Counter& {
      return r.counter("wsbridge_mqtt_passthrough_packets_total",
                       "MQTT packets relayed by pass-through routes",
                       {{"route", path}, {"direction", d}});
    };
    return PassthroughMetrics{
        r.gauge("wsbridge_mqtt_passthrough_connections",
                "MQTT pass-through sessions with a broker connection", {{"route", path}}),
        direction("to_broker"),
        direction("to_client"),
        kind("subscribe"),
        kind("subscription_quota"),
        kind("publish"),
        kind("delivery"),
        kind("too_large"),
        kind("connect"),
        r.counter("wsbridge_mqtt_passthrough_broker_failures_total",
                  "MQTT pass-through broker connections that failed or dropped", {{"route", path}}),
    };
  }
};

}  // namespace wsbridge::mqtt
