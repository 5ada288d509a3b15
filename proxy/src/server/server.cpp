#include "server/server.hpp"

#include <exception>
#include <set>
#include <stdexcept>
#include <thread>

#include "cluster/instance_identity.hpp"
#include "metrics/core_metrics.hpp"
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
  // Fallback session tokens name this instance (docs/FALLBACK.md).
  shared_->tokens =
      std::make_unique<fallback::SessionTokens>(config->instance_id, config->fallback.secret);
  shared_->instance_id = config->instance_id;
  set_process_instance_id(config->instance_id);
  core_metrics::instance_info(config->instance_id);
  if (config->cluster.enabled) {
    // What the other instances send this one, applied to its own sessions (SessionIndex is
    // safe from any thread; pushes and closes reach the shards through their inboxes).
    ShardShared* shared = shared_.get();
    cluster::ClusterBus::Handlers handlers;
    handlers.push = [shared](const nlohmann::json& request) {
      apply_forwarded_push(request, shared->sessions, shared->instance_id);
    };
    handlers.close = [shared](ConnectionId id, std::uint16_t code, const std::string& reason) {
      shared->sessions.close_session(id, code, reason);
    };
    handlers.list = [shared] {
      return session_entries(shared->sessions.list_sessions(), shared->instance_id);
    };
    try {
      shared_->cluster = std::make_unique<cluster::ClusterBus>(config->cluster, config->instance_id,
                                                               std::move(handlers));
    } catch (const std::exception& e) {
      throw std::runtime_error("[cluster] broker " + config->cluster.broker + ": " + e.what());
    }
  }
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
  for (const auto& proxy : config.proxies) {
    WSB_LOG(kInfo) << "proxy " << proxy->path << " -> " << proxy->backend_url;
  }
  if (shards_.size() > 1) {
    WSB_LOG(kInfo) << "serving on " << shards_.size() << " threads";
  }
  for (const auto& kind : config.kinds) kind->start();
  if (shared_->cluster) shared_->cluster->start();

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
  if (shared_->cluster) shared_->cluster->stop();

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

void Server::request_drain() {
  for (auto& shard : shards_) shard->request_drain(false);
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
