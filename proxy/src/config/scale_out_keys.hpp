// The keys of running as one of several instances (docs/DEPLOY.md): [server] instance_id,
// drain_delay and reconnect_spread, and the [cluster] table.
#pragma once

#include "cluster/cluster_settings.hpp"
#include "wsbridge/config_table.hpp"

namespace wsbridge {

struct ServerConfig;

// Reads instance_id, drain_delay, reconnect_spread and trusted_proxies from [server].
void read_instance_keys(ConfigTable& server, ServerConfig& config);

cluster::Settings read_cluster_keys(ConfigTable& t);

// The default instance id: the host name and the process id ("web-1:4242").
std::string default_instance_id();

}  // namespace wsbridge
