// Reading the levels of a topic or filter without allocating: '/' delimits a level, so "a//b"
// has the levels "a", "", "b" and "/" has two empty levels. Shared by the matcher and the trie.
#pragma once

#include <cstddef>
#include <string_view>

namespace wsbridge::mqtt {

// The levels of a topic or filter: one more than its slashes ("a" 1, "a/b" 2, "/" 2).
inline std::size_t topic_level_count(std::string_view text) {
  std::size_t n = 1;
  for (const char c : text) n += c == '/' ? 1 : 0;
  return n;
}

class LevelCursor {
 public:
  LevelCursor() = default;
  explicit LevelCursor(std::string_view text) : rest_(text), done_(false) {}

  bool at_end() const { return done_; }

  // Stores the next level in `level`; false once every level has been read.
  bool next(std::string_view& level) {
    if (done_) return false;
    const std::size_t slash = rest_.find('/');
    if (slash == std::string_view::npos) {
      level = rest_;
      done_ = true;
    } else {
      level = rest_.substr(0, slash);
      rest_.remove_prefix(slash + 1);
    }
    return true;
  }

 private:
  std::string_view rest_;
  bool done_ = true;
};

}  // namespace wsbridge::mqtt
