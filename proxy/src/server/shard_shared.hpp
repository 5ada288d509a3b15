// What the shards of one Server share: the global connection limits, the index of every session
// (for the admin API), the shards themselves (for the reload that shard 0 leads), and the
// bookkeeping of replaced configurations that each shard lets go on its own. Everything here is
// safe from any shard's thread.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "cluster/cluster_bus.hpp"
#include "fallback/session_token.hpp"
#include "server/connection_slots.hpp"
#include "server/session_index.hpp"
#include "server/session_post_counts.hpp"

namespace wsbridge {

class Shard;
struct ServerConfig;

struct ShardShared {
  explicit ShardShared(unsigned shard_count) : count(shard_count) {}

  const unsigned count;        // shards, fixed for the process' lifetime
  std::vector<Shard*> shards;  // index = shard number; set before any shard serves
  ConnectionSlots slots;       // max_connections, max_connections_per_ip
  ConnectionSlots http_slots;  // max_http_connections_per_ip (connections without a WebSocket)
  SessionIndex sessions;       // every open session, for the admin API
  // Fallback session tokens: one key for every shard (a session's requests land on any).
  std::unique_ptr<const fallback::SessionTokens> tokens;
  std::string instance_id;  // [server] instance_id, fixed for the process' lifetime
  // The other instances ([cluster]); null when alone. Started and stopped by the Server.
  std::unique_ptr<cluster::ClusterBus> cluster;
  // A drain or a shutdown began: /healthz answers 503 and new clients are refused, so the
  // balancer sends them elsewhere before this instance closes its own (docs/DEPLOY.md).
  std::atomic<bool> going_away{false};
  SessionPostCounts session_posts;  // fallback POSTs in flight per session

  // Shutdown: each shard, as it starts closing its sessions, adds how many; the last one to do so
  // gets the total (for the log), else nullopt. (One lock for both counts: with an atomic each,
  // the shard that counted itself last could have added its sessions first and read a total
  // without the others': "closing 2 connection(s)" of 5.)
  // A round each: an API drain, then the shutdown (whose total counted the drain's before).
  std::optional<std::size_t> closing(std::size_t closing_here) {
    std::lock_guard lock(closing_mutex_);
    closing_total_ += closing_here;
    if (++shards_closing_ < count) return std::nullopt;
    const std::size_t total = std::exchange(closing_total_, 0);
    shards_closing_ = 0;
    return total;
  }

  // A replaced configuration is let go by each shard once none of its sessions uses it; the
  // last shard to let go stops its adapters. Returns true for that last one.
  bool let_go(const ServerConfig* config) {
    std::lock_guard lock(retired_mutex_);
    auto [it, added] = retired_holders_.try_emplace(config, count);
    if (--it->second > 0) return false;
    retired_holders_.erase(it);
    return true;
  }

 private:
  std::mutex closing_mutex_;
  std::size_t closing_total_ = 0;
  unsigned shards_closing_ = 0;
  std::mutex retired_mutex_;
  std::map<const ServerConfig*, unsigned> retired_holders_;  // shards still holding each
};

}  // namespace wsbridge
