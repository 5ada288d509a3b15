// The front end as the process sees it: the shards (one libwebsockets service thread each) and
// what they share. main() and the tests know wsbridge only through this class.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "server_config.hpp"

namespace wsbridge {

class Shard;

class Server {
 public:
  explicit Server(std::shared_ptr<ServerConfig> config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Opens the listeners (throws std::runtime_error when one cannot be opened), starts the
  // adapters and serves until a shutdown completes.
  void run();

  // Any thread (not async-signal-safe): stop accepting, close every WebSocket with 1001 after its
  // queued frames, and return from run() once all are closed or the shutdown timeout passed.
  void request_shutdown();

  // Any thread: replace the configuration (SIGHUP). New connections get the new routes, keys,
  // ACLs and limits; existing ones keep the configuration they were admitted under until they
  // close. Refused (logged, counted, the current one kept) when it changes what only a restart
  // can: listeners, the admin listener, static files, or subprotocols lws does not know yet.
  void request_reload(std::shared_ptr<ServerConfig> config);

  // Any thread: true once every listener is open.
  bool ready() const;

 private:
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace wsbridge
