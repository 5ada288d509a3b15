#include "server.hpp"

#include "shard.hpp"

namespace wsbridge {

Server::Server(std::shared_ptr<ServerConfig> config) {
  shards_.push_back(std::make_unique<Shard>(std::move(config)));
}

Server::~Server() = default;

void Server::run() { shards_[0]->run(); }

void Server::request_shutdown() {
  for (auto& shard : shards_) shard->request_shutdown();
}

void Server::request_reload(std::shared_ptr<ServerConfig> config) {
  shards_[0]->request_reload(std::move(config));
}

bool Server::ready() const { return shards_[0]->ready(); }

}  // namespace wsbridge
