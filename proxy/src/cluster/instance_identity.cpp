#include "cluster/instance_identity.hpp"

#include <mutex>

#include "admin/admin_api.hpp"
#include "wsbridge/plugin.hpp"

namespace wsbridge {

namespace {

std::mutex& identity_mutex() {
  static std::mutex m;
  return m;
}

std::string& process_instance() {
  static std::string instance;
  return instance;
}

}  // namespace

void set_process_instance_id(std::string instance) {
  std::lock_guard lock(identity_mutex());
  process_instance() = std::move(instance);
}

std::string global_connection_id(ConnectionId id) {
  std::lock_guard lock(identity_mutex());
  return format_connection_id(id, process_instance());
}

}  // namespace wsbridge
