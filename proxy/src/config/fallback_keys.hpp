// The [fallback] table (docs/CONFIG.md): the HTTP fallback transports' settings.
#pragma once

#include "fallback/fallback_settings.hpp"
#include "wsbridge/config_table.hpp"

namespace wsbridge {

fallback::Settings read_fallback_keys(ConfigTable& t);

}  // namespace wsbridge
