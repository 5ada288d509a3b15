// `watch = true` of [listeners.tls]: the certificate and key files are looked at every couple of
// seconds, and a change reloads the configuration as SIGHUP does. A change is acted on once the
// files have stopped changing for one look (certbot and friends write the certificate and the key
// one after the other: a reload between the two would be refused as a mismatch).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <vector>

namespace wsbridge {

class FileWatch {
 public:
  void watch(std::vector<std::filesystem::path> files);
  bool empty() const { return files_.empty(); }
  // Looks again: true when the files changed since a look before this one, and not since.
  bool settled_change();

 private:
  struct Seen {
    std::int64_t mtime_ns = -1;  // -1: missing
    std::int64_t size = -1;
    ino_t inode = 0;
    bool operator==(const Seen&) const = default;
  };
  static Seen look(const std::filesystem::path& file);

  std::vector<std::filesystem::path> files_;
  std::vector<Seen> seen_;
  bool changing_ = false;
};

}  // namespace wsbridge
