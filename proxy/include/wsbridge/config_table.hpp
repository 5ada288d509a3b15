// Strict, position-aware reading of TOML tables. The core reads its own keys through a
// ConfigTable and hands the same object to an adapter's factory for the rest, so that every key is
// claimed by someone and a key nobody claimed is an error ("unknown key"), never silently ignored.
// Every error names the offending spot as `file:line:column: message`.
#pragma once

#include <toml++/toml.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsbridge {

struct SourcePosition {
  std::string file;
  std::uint32_t line = 0;    // 1-based; 0 when unknown
  std::uint32_t column = 0;  // 1-based; 0 when unknown

  std::string to_string() const;  // "file:line:column", or "file" when unknown
};

class ConfigError : public std::runtime_error {
 public:
  ConfigError(SourcePosition where, const std::string& message);
  const SourcePosition& where() const noexcept { return where_; }
  const std::string& message() const noexcept { return message_; }

 private:
  SourcePosition where_;
  std::string message_;
};

class ConfigTable {
 public:
  // `name` describes the table in messages, e.g. "route \"/echo\"" or "[server]".
  ConfigTable(const toml::table& table, std::string file, std::string name);

  const std::string& name() const noexcept { return name_; }
  const std::string& file() const noexcept { return file_; }
  const toml::table& raw() const noexcept { return *table_; }
  bool contains(std::string_view key) const { return table_->contains(key); }

  // Typed getters. Each marks the key as consumed and fails with the value's position when the
  // value has the wrong type or is out of range.
  std::optional<std::string> string(std::string_view key);
  std::string required_string(std::string_view key);
  std::optional<std::int64_t> integer(std::string_view key, std::int64_t min, std::int64_t max);
  std::optional<bool> boolean(std::string_view key);
  std::optional<std::vector<std::string>> string_array(std::string_view key);
  // A duration: a number of seconds (integer or float) or a string such as "250ms", "30s", "5m",
  // "1h". Must lie within [min, max].
  std::optional<std::chrono::milliseconds> duration(std::string_view key,
                                                    std::chrono::milliseconds min,
                                                    std::chrono::milliseconds max);
  // A size in bytes: an integer, or a string such as "512KiB", "1MiB", "2GiB". Within [min, max].
  std::optional<std::uint64_t> byte_size(std::string_view key, std::uint64_t min,
                                         std::uint64_t max);
  // A secret given either inline as `key` or as the name of an environment variable in
  // `key_env` (both is an error; a named but unset variable is an error).
  std::optional<std::string> secret(std::string_view key);

  // One of a fixed set of names (case-sensitive, like TOML keys): the value paired with it. Any
  // other string fails at the value with the choices and the nearest one, e.g.
  //   'log_format' in [server] must be "text" or "json", not "JSON"; did you mean "json"?
  // Give a named table, or a braced list with the type: `one_of<Mode>("mode", {{"a", kA}, ...})`.
  template <class E, std::size_t N>
  std::optional<E> one_of(std::string_view key,
                          const std::pair<std::string_view, E> (&choices)[N]) {
    const auto i = choice(key, names_of(choices));
    if (!i) return std::nullopt;
    return choices[*i].second;
  }
  // An array of strings, each one of the choices (an error points at the element).
  template <class E, std::size_t N>
  std::optional<std::vector<E>> each_one_of(std::string_view key,
                                            const std::pair<std::string_view, E> (&choices)[N]) {
    const auto indices = choice_each(key, names_of(choices));
    if (!indices) return std::nullopt;
    std::vector<E> out;
    out.reserve(indices->size());
    for (const std::size_t i : *indices) out.push_back(choices[i].second);
    return out;
  }

  std::optional<ConfigTable> table(std::string_view key);
  std::vector<ConfigTable> array_of_tables(std::string_view key);
  // The sub-tables of a table-of-tables such as [upstreams.a], [upstreams.b]: name and table.
  std::vector<std::pair<std::string, ConfigTable>> named_tables(std::string_view key);

  // How a key is written, so a suggestion for a misspelt one reads the way it must be written.
  enum class Shape { kValue, kTable, kArrayOfTables };
  // Marks a key as consumed without reading it (for keys interpreted elsewhere).
  void consume(std::string_view key, Shape shape = Shape::kValue) {
    consumed_.emplace(std::string(key), shape);
  }

  // Errors located at a key's value, or at the table itself.
  [[noreturn]] void fail_at(std::string_view key, const std::string& message) const;
  [[noreturn]] void fail(const std::string& message) const;
  SourcePosition position_of(std::string_view key) const;
  SourcePosition position() const;

  // Fails at the first key (in file order) that no getter consumed, suggesting the nearest key
  // that was asked for (a typo, or `[[route]]` for `[[routes]]`).
  void reject_unknown_keys() const;

 private:
  template <class E, std::size_t N>
  static std::vector<std::string_view> names_of(
      const std::pair<std::string_view, E> (&choices)[N]) {
    std::vector<std::string_view> names;
    names.reserve(N);
    for (const auto& choice : choices) names.push_back(choice.first);
    return names;
  }
  // The index in `names` of the key's string value (config_choice.cpp).
  std::optional<std::size_t> choice(std::string_view key,
                                    const std::vector<std::string_view>& names);
  std::optional<std::vector<std::size_t>> choice_each(std::string_view key,
                                                      const std::vector<std::string_view>& names);
  [[noreturn]] void fail_choice(const toml::node& at, std::string_view what, std::string_view value,
                                const std::vector<std::string_view>& names) const;
  const toml::node* node(std::string_view key, Shape shape = Shape::kValue);
  SourcePosition position_of_node(const toml::node& node) const;
  [[noreturn]] void fail_type(std::string_view key, const toml::node& node,
                              std::string_view expected) const;

  const toml::table* table_;
  std::string file_;
  std::string name_;
  std::map<std::string, Shape, std::less<>> consumed_;
};

// Parses "250ms", "30s", "5m", "1h", "1.5s"; nullopt when malformed.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
// Parses "1048576", "512KiB", "1MiB", "2GiB" (also "B", "KB"/"MB"/"GB" as powers of 1000).
std::optional<std::uint64_t> parse_byte_size(std::string_view text);
// The candidate closest to `unknown` by edit distance (case-insensitive, a transposition counts
// once), when it is close enough to be a likely typo; nullopt otherwise.
std::optional<std::string> nearest_key(std::string_view unknown,
                                       const std::vector<std::string>& candidates);

}  // namespace wsbridge
