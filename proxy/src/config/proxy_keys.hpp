// The [[proxy]] tables (docs/PROXY.md): prefixes relayed to legacy HTTP backends.
#pragma once

#include "wsbridge/config_table.hpp"

namespace wsbridge {

struct ServerConfig;

// Reads every [[proxy]] table of `top` into config.proxies (longest prefix first). Needs the
// routes and [jwt] / [[api_keys]] read before. Throws ConfigError for bad keys and values, a
// prefix reserved by the core or given twice, and an unreachable backend URL.
void read_proxy_tables(ConfigTable& top, ServerConfig& config);

}  // namespace wsbridge
