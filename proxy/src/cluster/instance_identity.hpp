// This process's [server] instance_id, for what adapters put in front of backends
// (global_connection_id in wsbridge/plugin.hpp). Set by the Server when it is built.
#pragma once

#include <string>

namespace wsbridge {

void set_process_instance_id(std::string instance);

}  // namespace wsbridge
