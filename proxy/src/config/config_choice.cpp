// ConfigTable's enum readers (one_of, each_one_of): a string that must be one of a fixed set of
// names, with one error message for all of them.
#include "wsbridge/config_table.hpp"

namespace wsbridge {

namespace {

std::optional<std::size_t> index_of(const std::vector<std::string_view>& names,
                                    std::string_view value) {
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == value) return i;
  }
  return std::nullopt;
}

std::string in_quotes(std::string_view name) {
  return "\"" + std::string(name) + "\"";
}

// "a" | "a" or "b" | one of "a", "b", "c"
std::string describe_choices(const std::vector<std::string_view>& names) {
  if (names.size() == 1) return in_quotes(names[0]);
  if (names.size() == 2) return in_quotes(names[0]) + " or " + in_quotes(names[1]);
  std::string out = "one of ";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ", ";
    out += in_quotes(names[i]);
  }
  return out;
}

}  // namespace

void ConfigTable::fail_choice(const toml::node& at, std::string_view what, std::string_view value,
                              const std::vector<std::string_view>& names) const {
  std::string message = std::string(what) + " in " + name_ + " must be " + describe_choices(names) +
                        ", not " + in_quotes(value);
  const std::vector<std::string> candidates(names.begin(), names.end());
  if (auto near = nearest_key(value, candidates))
    message += "; did you mean " + in_quotes(*near) + "?";
  throw ConfigError(position_of_node(at), message);
}

std::optional<std::size_t> ConfigTable::choice(std::string_view key,
                                               const std::vector<std::string_view>& names) {
  auto value = string(key);
  if (!value) return std::nullopt;
  if (auto i = index_of(names, *value)) return i;
  fail_choice(*table_->get(key), "'" + std::string(key) + "'", *value, names);
}

std::optional<std::vector<std::size_t>> ConfigTable::choice_each(
    std::string_view key, const std::vector<std::string_view>& names) {
  auto values = string_array(key);  // (checks that it is an array of strings)
  if (!values) return std::nullopt;
  std::vector<std::size_t> out;
  const toml::array& elements = *table_->get(key)->as_array();
  for (std::size_t e = 0; e < values->size(); ++e) {
    auto i = index_of(names, (*values)[e]);
    if (!i) {
      fail_choice(*elements.get(e), "each of '" + std::string(key) + "'", (*values)[e], names);
    }
    out.push_back(*i);
  }
  return out;
}

}  // namespace wsbridge
