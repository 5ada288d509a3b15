#include "acl.hpp"

#include "topic.hpp"

namespace wsbridge::mqtt {

namespace {

bool valid_claim_name(std::string_view name) {
  if (name.empty()) return false;
  for (const char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) {
      return false;
    }
  }
  return true;
}

// Replaces each placeholder through `value_of` (nullopt: the pattern cannot be filled).
template <typename F>
std::optional<std::string> substitute(std::string_view pattern, F&& value_of,
                                      std::string* problem) {
  std::string out;
  std::size_t i = 0;
  while (i < pattern.size()) {
    const char c = pattern[i];
    if (c == '}') {
      if (problem) *problem = "unbalanced '}'";
      return std::nullopt;
    }
    if (c != '{') {
      out.push_back(c);
      ++i;
      continue;
    }
    const std::size_t close = pattern.find('}', i);
    if (close == std::string_view::npos) {
      if (problem) *problem = "unbalanced '{'";
      return std::nullopt;
    }
    const std::string_view name = pattern.substr(i + 1, close - i - 1);
    if (name != "user" && !(name.starts_with("claim.") && valid_claim_name(name.substr(6)))) {
      if (problem)
        *problem = "unknown placeholder {" + std::string(name) + "} (use {user} or {claim.NAME})";
      return std::nullopt;
    }
    auto value = value_of(name);
    if (!value) return std::nullopt;
    out += *value;
    i = close + 1;
  }
  return out;
}

// A value may fill a placeholder only when it cannot change the pattern's shape.
bool safe_value(std::string_view v) {
  return !v.empty() && v.find_first_of("+#/") == std::string_view::npos &&
         v.find('\0') == std::string_view::npos;
}

}  // namespace

std::optional<std::string> acl_pattern_problem(std::string_view pattern) {
  std::string problem;
  auto filled = substitute(
      pattern, [](std::string_view) { return std::optional<std::string>("x"); }, &problem);
  if (!filled) return problem;
  if (auto p = topic_filter_problem(*filled)) return "is not a valid topic filter: it " + *p;
  return std::nullopt;
}

std::vector<std::string> expand_acl(const std::vector<std::string>& patterns,
                                    const std::string& user, const nlohmann::json& claims) {
  std::vector<std::string> out;
  auto value_of = [&](std::string_view name) -> std::optional<std::string> {
    std::string value;
    if (name == "user") {
      value = user;
    } else {
      const std::string key(name.substr(6));
      if (!claims.is_object()) return std::nullopt;
      auto it = claims.find(key);
      if (it == claims.end()) return std::nullopt;
      if (it->is_string()) {
        value = it->get<std::string>();
      } else if (it->is_number_integer()) {
        value = std::to_string(it->get<long long>());
      } else {
        return std::nullopt;
      }
    }
    if (!safe_value(value)) return std::nullopt;
    return value;
  };
  for (const auto& pattern : patterns) {
    auto filled = substitute(pattern, value_of, nullptr);
    if (filled && !topic_filter_problem(*filled)) out.push_back(std::move(*filled));
  }
  return out;
}

bool subscribe_allowed(const std::vector<std::string>& expanded, std::string_view filter) {
  for (const auto& allowed : expanded) {
    if (filter_covers(allowed, filter)) return true;
  }
  return false;
}

bool publish_allowed(const std::vector<std::string>& expanded, std::string_view topic) {
  for (const auto& allowed : expanded) {
    if (filter_matches(allowed, topic)) return true;
  }
  return false;
}

}  // namespace wsbridge::mqtt
