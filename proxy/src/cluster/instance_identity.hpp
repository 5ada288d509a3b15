// This process's [server] instance_id, for what adapters put in front of backends
// (global_connection_id in wsbridge/plugin.hpp). Set by the Server when it is built.
#pragma once

#include <string>
#include <string_view>

namespace wsbridge {

// [server] instance_id's alphabet: 1 to 64 letters, digits, '.', '_', ':' or '-'. It is also a
// level of the cluster's control topics and the part after '@' of a connection id ("42@web-1"),
// so never '/', '+', '#' or '@'.
inline bool is_valid_instance_id(std::string_view id) {
  return !id.empty() && id.size() <= 64 &&
         id.find_first_not_of(
             "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") ==
             std::string_view::npos;
}

void set_process_instance_id(std::string instance);

}  // namespace wsbridge
