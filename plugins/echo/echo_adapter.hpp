// The echo adapter: the seed's example server. Every message comes back to its sender with the
// same type (text or binary), after an optional configured prefix. A client that does not read
// its echoes is not read from either: past the route's queue_high_water_bytes its reading pauses
// until they drained, so what it sends waits in TCP, not in the queue.
#pragma once

#include <memory>
#include <string>

#include "wsbridge/plugin.hpp"

namespace wsbridge::echo {

struct EchoConfig {
  std::string prefix;  // e.g. "Echo: "; empty sends the received frame back untouched

  static EchoConfig from_route(ConfigTable& options);
};

class EchoAdapter final : public Adapter {
 public:
  explicit EchoAdapter(EchoConfig config) : config_(std::move(config)) {}
  void on_message(const std::shared_ptr<Connection>& connection, Frame message) override;
  void on_drained(const std::shared_ptr<Connection>& connection) override;

 private:
  const EchoConfig config_;
};

class EchoKind final : public AdapterKind {
 public:
  std::unique_ptr<Adapter> create_route(ConfigTable& options, const RouteContext& context) override;
};

}  // namespace wsbridge::echo
