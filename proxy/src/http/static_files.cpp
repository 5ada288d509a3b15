#include "http/static_files.hpp"

#include <libwebsockets.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "wsbridge/log.hpp"

namespace wsbridge::static_files {
namespace {

// The context's own operations with `open` replaced. `ops` comes first, so the pointer lws hands
// back to open() (the context's fops, i.e. &ops) leads to the rest of this record.
struct Confined {
  lws_plat_file_ops ops{};
  decltype(lws_plat_file_ops::LWS_FOP_OPEN) original_open = nullptr;
  std::string root;  // canonical
};

// One record per context, kept for the process' lifetime (a context reads it until destroyed;
// a later context at the same address replaces it).
std::mutex g_mutex;
std::map<const lws_context*, std::unique_ptr<Confined>>& records() {
  static std::map<const lws_context*, std::unique_ptr<Confined>> instance;
  return instance;
}

// The real path of what `fd` refers to; falls back to the name lws opened when /proc is missing.
std::string real_path_of(int fd, const char* filename) {
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  char target[PATH_MAX];
  const ssize_t n = ::readlink(link, target, sizeof target - 1);
  if (n > 0) return std::string(target, static_cast<std::size_t>(n));
  char resolved[PATH_MAX];
  return ::realpath(filename, resolved) != nullptr ? std::string(resolved) : std::string();
}

lws_fop_fd_t confined_open(const lws_plat_file_ops* fops, const char* filename, const char* vpath,
                           lws_fop_flags_t* flags) {
  const auto* self = reinterpret_cast<const Confined*>(fops);
  lws_fop_fd_t fd = self->original_open(fops, filename, vpath, flags);
  if (fd == nullptr) return nullptr;
  const std::string real = real_path_of(fd->fd, filename);
  if (inside(self->root, real)) return fd;
  WSB_LOG(kInfo) << "refused static file " << filename << ": its real path is outside static_dir ("
                 << real << ")";
  lws_vfs_file_close(&fd);
  return nullptr;
}

}  // namespace

bool inside(std::string_view root_real, std::string_view real) {
  if (root_real.empty() || real.empty()) return false;
  if (real == root_real) return true;
  if (root_real == "/") return real.front() == '/';
  return real.size() > root_real.size() && real.starts_with(root_real) &&
         real[root_real.size()] == '/';
}

void confine(lws_context* context, const std::filesystem::path& root) {
  std::error_code ec;
  const std::filesystem::path real = std::filesystem::canonical(root, ec);
  if (ec) {
    throw std::runtime_error("static_dir " + root.string() + ": " + ec.message());
  }
  auto record = std::make_unique<Confined>();
  const lws_plat_file_ops* current = lws_get_fops(context);
  record->ops = *current;
  record->original_open = current->LWS_FOP_OPEN;
  record->ops.LWS_FOP_OPEN = confined_open;
  record->root = real.string();
  std::lock_guard lock(g_mutex);
  auto& slot = records()[context];
  slot = std::move(record);
  lws_set_fops(context, &slot->ops);
}

}  // namespace wsbridge::static_files
