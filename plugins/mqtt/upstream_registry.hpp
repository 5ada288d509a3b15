// Broker connections outlive the configuration that made them. A SIGHUP builds a whole new
// configuration; its routes get the running Upstream whose settings are exactly theirs, so an
// unrelated change does not drop and rebuild every broker connection (sessions would see
// `upstream: down`, QoS 0 publishes would fail and subscriptions wait meanwhile). An upstream
// lives while some configuration's routes hold it (shared_ptr), and is stopped by the last
// configuration that started it (see MqttKind in mqtt_adapter.cpp).
#pragma once

#include <memory>

#include "upstream.hpp"

namespace wsbridge::mqtt {

// The live upstream with exactly these settings, else a new one (not started). Any thread.
std::shared_ptr<Upstream> acquire_upstream(const UpstreamConfig& config);

}  // namespace wsbridge::mqtt
