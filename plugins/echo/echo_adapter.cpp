#include "echo_adapter.hpp"

#include "wsbridge/adapter_registry.hpp"

namespace wsbridge::echo {

EchoConfig EchoConfig::from_route(ConfigTable& options) {
  EchoConfig config;
  if (auto prefix = options.string("prefix")) {
    if (prefix->size() > 4096) options.fail_at("prefix", "'prefix' must be at most 4096 bytes");
    config.prefix = std::move(*prefix);
  }
  return config;
}

void EchoAdapter::on_message(const std::shared_ptr<Connection>& connection, Frame message) {
  const SendResult sent =
      config_.prefix.empty()
          ? connection->send(std::move(message))  // the same buffer goes back: no copy
          : connection->send(Frame::concat(message.kind(), config_.prefix, message.payload()));
  // Each echo is the client's own input: one that does not read them would otherwise fill its
  // queue to max_queued_bytes (and be closed with 1013) at the speed it can send.
  if (sent == SendResult::kQueuedOverHighWater) connection->pause_reading(true);
}

void EchoAdapter::on_drained(const std::shared_ptr<Connection>& connection) {
  connection->pause_reading(false);
}

std::unique_ptr<Adapter> EchoKind::create_route(ConfigTable& options, const RouteContext&) {
  return std::make_unique<EchoAdapter>(EchoConfig::from_route(options));
}

}  // namespace wsbridge::echo

void wsbridge_register_echo(wsbridge::AdapterRegistry& registry) {
  registry.add("echo", [] { return std::make_unique<wsbridge::echo::EchoKind>(); });
}
