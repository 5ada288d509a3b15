// The front end as the process sees it: the shards, one libwebsockets service thread each, and
// what they share (ShardShared). main() and the tests know wsbridge's front end only through this
// class; with `[server] threads = 1` it is one shard on the thread that calls run().
#pragma once

#include <memory>
#include <vector>

#include "config/server_config.hpp"

namespace wsbridge {

class Shard;
struct ShardShared;

class Server {
 public:
  explicit Server(std::shared_ptr<ServerConfig> config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Opens the listeners on every shard (throws std::runtime_error when one cannot be opened),
  // starts the adapters, serves (shard 0 on the calling thread, the others on threads of their
  // own) until a shutdown completes, then stops the adapters.
  void run();

  // Any thread (not async-signal-safe): drain for [server] drain_delay (/healthz says 503, new
  // clients are refused), then stop accepting, close every client with 1012 after its queued
  // frames, and return from run() once all are closed or the shutdown timeout passed.
  void request_shutdown();

  // Any thread: the same drain without the exit (POST /api/v1/drain): after drain_delay every
  // client is closed with 1012; the process keeps answering 503 until it is stopped.
  void request_drain();

  // Any thread: replace the configuration (SIGHUP). New connections get the new routes, keys,
  // ACLs and limits; existing ones keep the configuration they were admitted under until they
  // close. Refused (logged, counted, the current one kept) when it changes what only a restart
  // can: listeners, the admin listener, static files, threads, or subprotocols lws does not know.
  void request_reload(std::shared_ptr<ServerConfig> config);

  // Any thread: true once every shard serves.
  bool ready() const;

  // The number of shards (service threads).
  unsigned threads() const;

  // Whether some listener speaks TLS (fixed at start: changing it needs a restart).
  bool serves_tls() const { return serves_tls_; }

 private:
  bool serves_tls_ = false;
  std::unique_ptr<ShardShared> shared_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace wsbridge
