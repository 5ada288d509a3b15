#include "config/file_watch.hpp"

#include <sys/stat.h>

#include <utility>

namespace wsbridge {

FileWatch::Seen FileWatch::look(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return {};
  return {static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
          static_cast<std::int64_t>(st.st_size), st.st_ino};
}

void FileWatch::watch(std::vector<std::filesystem::path> files) {
  files_ = std::move(files);
  seen_.clear();
  for (const auto& f : files_) seen_.push_back(look(f));
  changing_ = false;
}

bool FileWatch::settled_change() {
  bool changed_now = false;
  for (std::size_t i = 0; i < files_.size(); ++i) {
    Seen now = look(files_[i]);
    if (!(now == seen_[i])) {
      seen_[i] = now;
      changed_now = true;
    }
  }
  if (changed_now) {
    changing_ = true;
    return false;
  }
  return std::exchange(changing_, false);
}

}  // namespace wsbridge
