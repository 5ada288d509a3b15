#include "wsbridge/config_table.hpp"
#include "wsbridge/log.hpp"

#include "wsbridge/text.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace wsbridge {

namespace {

std::string describe_type(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date/time";
    default:
      return "an unknown value";
  }
}

std::string quote(std::string_view key) {
  return "'" + std::string(key) + "'";
}

std::string format_ms(std::chrono::milliseconds ms) {
  if (ms.count() % 1000 == 0) return std::to_string(ms.count() / 1000) + "s";
  return std::to_string(ms.count()) + "ms";
}

// Splits "12.5ms" into number and unit; false when no leading number.
bool split_number_unit(std::string_view text, double& number, std::string_view& unit) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    ++i;
  }
  if (i == 0) return false;
  std::string digits(text.substr(0, i));
  if (std::count(digits.begin(), digits.end(), '.') > 1) return false;
  char* end = nullptr;
  number = std::strtod(digits.c_str(), &end);
  if (end != digits.c_str() + digits.size() || !std::isfinite(number)) return false;
  unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  return true;
}

}  // namespace

std::string SourcePosition::to_string() const {
  if (line == 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

// A message often quotes the offending value, and that value may hold control characters: escaped
// here, once, so that no error text reaches a terminal or a log raw.
ConfigError::ConfigError(SourcePosition where, const std::string& message)
    : std::runtime_error(escape_control_characters(where.to_string() + ": " + message)),
      where_(std::move(where)),
      message_(escape_control_characters(message)) {}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  double number = 0;
  std::string_view unit;
  if (!split_number_unit(text, number, unit)) return std::nullopt;
  double factor_ms = 0;
  if (unit == "ms") {
    factor_ms = 1;
  } else if (unit == "s" || unit.empty()) {
    factor_ms = 1000;
  } else if (unit == "m" || unit == "min") {
    factor_ms = 60'000;
  } else if (unit == "h") {
    factor_ms = 3'600'000;
  } else {
    return std::nullopt;
  }
  const double ms = number * factor_ms;
  if (ms > static_cast<double>(std::numeric_limits<std::int64_t>::max() / 2)) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(ms)));
}

std::optional<std::uint64_t> parse_byte_size(std::string_view text) {
  double number = 0;
  std::string_view unit;
  if (!split_number_unit(text, number, unit)) return std::nullopt;
  double factor = 0;
  if (unit.empty() || unit == "B") {
    factor = 1;
  } else if (unit == "KiB") {
    factor = 1024.0;
  } else if (unit == "MiB") {
    factor = 1024.0 * 1024;
  } else if (unit == "GiB") {
    factor = 1024.0 * 1024 * 1024;
  } else if (unit == "KB" || unit == "kB") {
    factor = 1e3;
  } else if (unit == "MB") {
    factor = 1e6;
  } else if (unit == "GB") {
    factor = 1e9;
  } else {
    return std::nullopt;
  }
  const double bytes = number * factor;
  if (bytes != std::floor(bytes) || bytes > 9e18) return std::nullopt;
  return static_cast<std::uint64_t>(bytes);
}

ConfigTable::ConfigTable(const toml::table& table, std::string file, std::string name)
    : table_(&table), file_(std::move(file)), name_(std::move(name)) {}

SourcePosition ConfigTable::position_of_node(const toml::node& node) const {
  const auto& src = node.source();
  return SourcePosition{file_, src.begin.line, src.begin.column};
}

SourcePosition ConfigTable::position() const {
  return position_of_node(*table_);
}

SourcePosition ConfigTable::position_of(std::string_view key) const {
  if (const toml::node* n = table_->get(key)) return position_of_node(*n);
  return position();
}

void ConfigTable::fail_at(std::string_view key, const std::string& message) const {
  throw ConfigError(position_of(key), message);
}

void ConfigTable::fail(const std::string& message) const {
  throw ConfigError(position(), message);
}

void ConfigTable::fail_type(std::string_view key, const toml::node& node,
                            std::string_view expected) const {
  fail_at(key, quote(key) + " in " + name_ + " must be " + std::string(expected) + ", not " +
                   describe_type(node));
}

const toml::node* ConfigTable::node(std::string_view key, Shape shape) {
  consumed_.insert_or_assign(std::string(key), shape);
  return table_->get(key);
}

std::optional<std::string> ConfigTable::string(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  if (!n->is_string()) fail_type(key, *n, "a string");
  return n->as_string()->get();
}

std::string ConfigTable::required_string(std::string_view key) {
  auto value = string(key);
  if (!value) fail("missing required key " + quote(key) + " in " + name_);
  return *value;
}

std::optional<std::int64_t> ConfigTable::integer(std::string_view key, std::int64_t min,
                                                 std::int64_t max) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  if (!n->is_integer()) fail_type(key, *n, "an integer");
  const std::int64_t v = n->as_integer()->get();
  if (v < min || v > max) {
    fail_at(key, quote(key) + " in " + name_ + " must be between " + std::to_string(min) + " and " +
                     std::to_string(max) + ", not " + std::to_string(v));
  }
  return v;
}

std::optional<bool> ConfigTable::boolean(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  if (!n->is_boolean()) fail_type(key, *n, "a boolean (true or false)");
  return n->as_boolean()->get();
}

std::optional<std::vector<std::string>> ConfigTable::string_array(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  if (!n->is_array()) fail_type(key, *n, "an array of strings");
  std::vector<std::string> out;
  for (const toml::node& element : *n->as_array()) {
    if (!element.is_string()) {
      throw ConfigError(position_of_node(element), "every element of " + quote(key) + " in " +
                                                       name_ + " must be a string, not " +
                                                       describe_type(element));
    }
    out.push_back(element.as_string()->get());
  }
  return out;
}

std::optional<std::chrono::milliseconds> ConfigTable::duration(std::string_view key,
                                                               std::chrono::milliseconds min,
                                                               std::chrono::milliseconds max) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  std::optional<std::chrono::milliseconds> value;
  if (n->is_integer()) {
    const std::int64_t seconds = n->as_integer()->get();
    if (seconds >= 0 && seconds < std::numeric_limits<std::int64_t>::max() / 1000) {
      value = std::chrono::milliseconds(seconds * 1000);
    }
  } else if (n->is_floating_point()) {
    const double seconds = n->as_floating_point()->get();
    if (std::isfinite(seconds) && seconds >= 0 && seconds < 1e12) {
      value = std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000)));
    }
  } else if (n->is_string()) {
    value = parse_duration(n->as_string()->get());
  } else {
    fail_type(key, *n, "a duration (seconds, or a string such as \"500ms\", \"30s\", \"5m\")");
  }
  if (!value) {
    fail_at(key,
            quote(key) + " in " + name_ +
                " is not a valid duration (use seconds, or \"500ms\", \"30s\", \"5m\", \"1h\")");
  }
  if (*value < min || *value > max) {
    fail_at(key, quote(key) + " in " + name_ + " must be between " + format_ms(min) + " and " +
                     format_ms(max));
  }
  return value;
}

std::optional<std::uint64_t> ConfigTable::byte_size(std::string_view key, std::uint64_t min,
                                                    std::uint64_t max) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  std::optional<std::uint64_t> value;
  if (n->is_integer()) {
    const std::int64_t v = n->as_integer()->get();
    if (v >= 0) value = static_cast<std::uint64_t>(v);
  } else if (n->is_string()) {
    value = parse_byte_size(n->as_string()->get());
  } else {
    fail_type(key, *n, "a size (bytes, or a string such as \"64KiB\", \"1MiB\")");
  }
  if (!value) {
    fail_at(key, quote(key) + " in " + name_ +
                     " is not a valid size (use bytes, or \"64KiB\", \"1MiB\", \"1GiB\")");
  }
  if (*value < min || *value > max) {
    fail_at(key, quote(key) + " in " + name_ + " must be between " + std::to_string(min) + " and " +
                     std::to_string(max) + " bytes");
  }
  return value;
}

std::optional<std::string> ConfigTable::secret(std::string_view key) {
  const std::string env_key = std::string(key) + "_env";
  auto inline_value = string(key);
  auto env_name = string(env_key);
  if (inline_value && env_name) {
    fail_at(env_key,
            "give either " + quote(key) + " or " + quote(env_key) + " in " + name_ + ", not both");
  }
  if (inline_value) return inline_value;
  if (!env_name) return std::nullopt;
  const char* value = std::getenv(env_name->c_str());
  if (value == nullptr) {
    fail_at(env_key, quote(env_key) + " in " + name_ + " names the environment variable " +
                         *env_name + ", which is not set");
  }
  return std::string(value);
}

std::optional<ConfigTable> ConfigTable::table(std::string_view key) {
  const toml::node* n = node(key, Shape::kTable);
  if (n == nullptr) return std::nullopt;
  if (!n->is_table()) fail_type(key, *n, "a table");
  const std::string child = name_ == "the top level" ? "[" + std::string(key) + "]"
                                                     : "'" + std::string(key) + "' of " + name_;
  return ConfigTable(*n->as_table(), file_, child);
}

std::vector<ConfigTable> ConfigTable::array_of_tables(std::string_view key) {
  const toml::node* n = node(key, Shape::kArrayOfTables);
  std::vector<ConfigTable> out;
  if (n == nullptr) return out;
  if (!n->is_array_of_tables())
    fail_type(key, *n, "an array of tables ([[" + std::string(key) + "]])");
  std::size_t index = 0;
  for (const toml::node& element : *n->as_array()) {
    out.emplace_back(*element.as_table(), file_,
                     "[[" + std::string(key) + "]] #" + std::to_string(++index));
  }
  return out;
}

std::vector<std::pair<std::string, ConfigTable>> ConfigTable::named_tables(std::string_view key) {
  std::vector<std::pair<std::string, ConfigTable>> out;
  auto outer = table(key);
  if (!outer) return out;
  for (const auto& [name, value] : outer->raw()) {
    const std::string child_name = std::string(key) + "." + std::string(name.str());
    // The name is how routes and logs refer to the table ([jwt.NAME], [upstreams.NAME]).
    if (name.str().empty()) {
      throw ConfigError(position_of_node(value),
                        "'[" + std::string(key) + ".\"\"]' has an empty name: give it one");
    }
    if (!value.is_table()) {
      throw ConfigError(position_of_node(value),
                        "'" + child_name + "' must be a table ([" + child_name + "])");
    }
    out.emplace_back(std::string(name.str()),
                     ConfigTable(*value.as_table(), file_, "[" + child_name + "]"));
  }
  return out;
}

void ConfigTable::reject_unknown_keys() const {
  const toml::key* first = nullptr;
  for (const auto& [key, value] : *table_) {
    if (consumed_.count(key.str()) != 0) continue;
    const auto& a = key.source().begin;
    if (first == nullptr || a.line < first->source().begin.line ||
        (a.line == first->source().begin.line && a.column < first->source().begin.column)) {
      first = &key;
    }
  }
  if (first == nullptr) return;
  std::string message = "unknown key " + quote(first->str()) + " in " + name_;
  std::vector<std::string> known;
  for (const auto& [key, shape] : consumed_) known.push_back(key);
  if (auto near = nearest_key(first->str(), known)) {
    const Shape shape = consumed_.find(*near)->second;
    // Top-level tables are written as headers; a nested one as a dotted key or inline table.
    const bool top = name_ == "the top level";
    std::string spelled = quote(*near);
    if (top && shape == Shape::kTable) spelled = "[" + *near + "]";
    if (top && shape == Shape::kArrayOfTables) spelled = "[[" + *near + "]]";
    message += "; did you mean " + spelled + "?";
  }
  const auto& src = first->source().begin;
  throw ConfigError(SourcePosition{file_, src.line, src.column}, message);
}

std::optional<std::string> nearest_key(std::string_view unknown,
                                       const std::vector<std::string>& candidates) {
  using text::lower;
  const std::string a = lower(unknown);
  // Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps.
  auto distance = [&a](const std::string& b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
      for (std::size_t j = 1; j <= b.size(); ++j) {
        const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
          d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
      }
    }
    return d[a.size()][b.size()];
  };
  // Short keys tolerate one edit, longer ones up to three: "qso" is "qos", "foo" is nothing.
  const std::size_t limit = a.size() <= 3 ? 1 : a.size() <= 6 ? 2 : 3;
  std::optional<std::string> best;
  std::size_t best_distance = limit + 1;
  for (const auto& candidate : candidates) {
    const std::size_t d = distance(lower(candidate));
    if (d < best_distance && d < std::max(a.size(), candidate.size())) {
      best = candidate;
      best_distance = d;
    }
  }
  return best;
}

}  // namespace wsbridge
