// A listener's [listeners.tls] table (docs/CONFIG.md "TLS"): the settings, and every certificate
// file read and checked now, so that a config that loads (or passes --check-config, or is
// accepted at a reload) serves exactly these certificates. A file that cannot be used is a
// config error at its key's file:line:column.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tls/server_certificates.hpp"
#include "wsbridge/config_table.hpp"

namespace wsbridge {

struct ListenerTls {
  std::shared_ptr<const tls::ServerCertificates> certificates;
  std::vector<std::filesystem::path> files;  // every file it read (for `watch`)
};

// `listener`: "address:port", for the metrics.
ListenerTls read_tls_table(ConfigTable& t, const std::filesystem::path& config_dir,
                           const std::string& listener);

}  // namespace wsbridge
