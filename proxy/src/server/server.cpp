#include "server/server.hpp"

#include <unistd.h>

#include <exception>
#include <set>
#include <stdexcept>
#include <thread>

#include "server/shard_shared.hpp"
#include "shard/shard.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge {

Server::Server(std::shared_ptr<ServerConfig> config)
    : serves_tls_(config->has_tls()),
      shared_(std::make_unique<ShardShared>(config->effective_threads())) {
  if (config->http_client->shards() != shared_->count) {
    // (parse_config sizes it; a configuration put together by hand must do the same.)
    throw std::logic_error("the configuration's HTTP client is not sized for its threads");
  }
  // Fallback session tokens name this process: host name and pid (docs/FALLBACK.md).
  std::string instance = config->instance_id;
  if (instance.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    instance = std::string(host) + ":" + std::to_string(getpid());
  }
  shared_->tokens = std::make_unique<fallback::SessionTokens>(instance, config->fallback.secret);
  for (unsigned i = 0; i < shared_->count; ++i) {
    shards_.push_back(std::make_unique<Shard>(config, *shared_, i));
    shared_->shards.push_back(shards_.back().get());
  }
}

Server::~Server() = default;

unsigned Server::threads() const {
  return shared_->count;
}

void Server::run() {
  for (auto& shard : shards_) shard->open();
  const ServerConfig& config = *shards_.front()->config();
  for (const auto& route : config.routes) {
    WSB_LOG(kInfo) << "route " << route.path << " -> adapter " << route.adapter_name;
  }
  if (shards_.size() > 1) {
    WSB_LOG(kInfo) << "serving on " << shards_.size() << " threads";
  }
  for (const auto& kind : config.kinds) kind->start();

  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < shards_.size(); ++i) {
    threads.emplace_back([this, i] {
      try {
        shards_[i]->serve();
      } catch (const std::exception& e) {
        WSB_LOG(kError) << "shard " << i << " failed: " << e.what() << "; shutting down";
        request_shutdown();
      }
    });
  }
  std::exception_ptr failure;
  try {
    shards_.front()->serve();
  } catch (...) {
    failure = std::current_exception();
    request_shutdown();
  }
  for (auto& thread : threads) thread.join();

  // Every shard's last configuration (one, unless a shard stopped before following a reload)
  // stops its adapters; replaced ones were stopped by the last shard to let them go.
  std::set<const ServerConfig*> stopped;
  for (const auto& shard : shards_) {
    const ServerConfig* last = shard->config().get();
    if (!stopped.insert(last).second) continue;
    for (const auto& kind : last->kinds) kind->stop();
  }
  WSB_LOG(kInfo) << "stopped";
  if (failure) std::rethrow_exception(failure);
}

void Server::request_shutdown() {
  for (auto& shard : shards_) shard->request_shutdown();
}

void Server::request_reload(std::shared_ptr<ServerConfig> config) {
  shards_.front()->request_reload(std::move(config));  // shard 0 decides for all
}

bool Server::ready() const {
  for (const auto& shard : shards_) {
    if (!shard->ready()) return false;
  }
  return true;
}

}  // namespace wsbridge
