#include "acl.hpp"

#include <algorithm>
#include <cstdint>

#include "topic.hpp"

namespace wsbridge::mqtt {

namespace {

constexpr std::string_view kClaimPrefix = "claim.";

bool is_claim_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

bool is_placeholder(std::string_view name) {
  if (name == "user") return true;
  if (!name.starts_with(kClaimPrefix)) return false;
  const std::string_view claim = name.substr(kClaimPrefix.size());
  return !claim.empty() &&
         std::all_of(claim.begin(), claim.end(), [](char c) { return is_claim_name_char(c); });
}

// Copies `pattern` with each placeholder replaced by value_of(name, at_start), where `at_start`
// says the value would begin the filter. nullopt when the pattern is malformed (with the reason
// in *problem when given) or when value_of has no value for a placeholder.
template <typename ValueOf>
std::optional<std::string> substitute(std::string_view pattern, const ValueOf& value_of,
                                      std::string* problem) {
  std::string out;
  out.reserve(pattern.size());
  std::size_t i = 0;
  while (i < pattern.size()) {
    const char c = pattern[i];
    if (c == '}') {
      if (problem != nullptr) *problem = "has a '}' without a matching '{'";
      return std::nullopt;
    }
    if (c != '{') {
      out.push_back(c);
      ++i;
      continue;
    }
    const std::size_t close = pattern.find_first_of("{}", i + 1);
    if (close == std::string_view::npos || pattern[close] != '}') {
      if (problem != nullptr) *problem = "has a '{' without a matching '}'";
      return std::nullopt;
    }
    const std::string_view name = pattern.substr(i + 1, close - i - 1);
    if (!is_placeholder(name)) {
      if (problem != nullptr) {
        *problem = "has an unknown placeholder {" + std::string(name) +
                   "} (use {user} or {claim.NAME}; NAME: letters, digits, '_', '-', '.')";
      }
      return std::nullopt;
    }
    std::optional<std::string> value = value_of(name, out.empty());
    if (!value) return std::nullopt;
    out += *value;
    i = close + 1;
  }
  return out;
}

// Whether `value` can fill a placeholder without changing the shape of the filter: it must stay
// inside its level (no '/'), match only itself (no '+', '#') and not make the filter begin with
// '$', which would reach the broker's $SYS topics (a user named "$SYS" and "{user}/#").
bool safe_value(std::string_view value, bool at_start) {
  if (value.empty()) return false;
  if (value.find_first_of(std::string_view("+#/\0", 4)) != std::string_view::npos) return false;
  return !(at_start && value.front() == '$');
}

// The text of a claim usable as a level: strings as they are, integers in decimal.
std::optional<std::string> claim_text(const nlohmann::json& claims, std::string_view name) {
  if (!claims.is_object()) return std::nullopt;
  const auto it = claims.find(std::string(name));
  if (it == claims.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_unsigned()) return std::to_string(it->get<std::uint64_t>());
  if (it->is_number_integer()) return std::to_string(it->get<std::int64_t>());
  return std::nullopt;  // booleans, floats, null, arrays, objects
}

}  // namespace

std::optional<std::string> acl_pattern_problem(std::string_view pattern) {
  std::string problem;
  const auto plain = [](std::string_view, bool) { return std::optional<std::string>("x"); };
  const std::optional<std::string> filled = substitute(pattern, plain, &problem);
  if (!filled) return problem;
  if (auto filter_problem = topic_filter_problem(*filled)) {
    return "is not a valid topic filter: it " + *filter_problem;
  }
  return std::nullopt;
}

namespace {

// `dollar_guard`: a wildcard in the first level cannot match `prefix` when it starts with '$'.
bool reaches(std::string_view pattern, std::string_view prefix, bool dollar_guard) {
  bool first = true;
  while (true) {
    const auto p_end = pattern.find('/');
    const auto r_end = prefix.find('/');
    const std::string_view p_level = pattern.substr(0, p_end);
    const std::string_view r_level = prefix.substr(0, r_end);
    const bool shielded = first && dollar_guard && prefix.front() == '$';
    if (p_level == "#") return !shielded;
    const bool wildcard = p_level == "+" || p_level.find('{') != std::string_view::npos;
    if (wildcard ? shielded : p_level != r_level) return false;
    if (r_end == std::string_view::npos) return true;  // at the prefix: it and what is under it
    // The pattern ends above the prefix: it names an ancestor, not a topic under the prefix.
    if (p_end == std::string_view::npos) return false;
    pattern.remove_prefix(p_end + 1);
    prefix.remove_prefix(r_end + 1);
    first = false;
  }
}

}  // namespace

bool reaches_prefix(std::string_view pattern, std::string_view prefix) {
  if (prefix.empty()) return false;
  if (reaches(pattern, prefix, true)) return true;
  // "$share/GROUP/FILTER" subscribes to FILTER. As an ACL pattern, "$share/g/#" covers the
  // subscription "$share/g/$wsbridge/#": what follows the group is compared level by level, so
  // a wildcard there reaches '$' topics too.
  constexpr std::string_view kShare = "$share/";
  if (!pattern.starts_with(kShare)) return false;
  pattern.remove_prefix(kShare.size());
  const auto group_end = pattern.find('/');
  const std::string_view group = pattern.substr(0, group_end);
  if (group == "#") return true;
  if (group_end == std::string_view::npos) return false;
  return reaches(pattern.substr(group_end + 1), prefix, false);
}

std::vector<std::string> expand_acl(const std::vector<std::string>& patterns,
                                    const std::string& user, const nlohmann::json& claims,
                                    std::string_view reserved_prefix) {
  const auto value_of = [&](std::string_view name, bool at_start) -> std::optional<std::string> {
    std::optional<std::string> value = name == "user"
                                           ? std::optional<std::string>(user)
                                           : claim_text(claims, name.substr(kClaimPrefix.size()));
    if (!value || !safe_value(*value, at_start)) return std::nullopt;
    return value;
  };
  std::vector<std::string> out;
  out.reserve(patterns.size());
  for (const std::string& pattern : patterns) {
    std::optional<std::string> filled = substitute(pattern, value_of, nullptr);
    // The final check also drops values that are not UTF-8 or make the filter too long.
    if (filled && !topic_filter_problem(*filled) && !reaches_prefix(*filled, reserved_prefix)) {
      out.push_back(std::move(*filled));
    }
  }
  return out;
}

SharedAcl expand_acl_for_everyone(const std::vector<std::string>& patterns,
                                  std::string_view reserved_prefix) {
  // Every placeholder starts with '{', and a brace anywhere else makes the pattern invalid.
  const bool personal = std::any_of(patterns.begin(), patterns.end(), [](const std::string& p) {
    return p.find('{') != std::string::npos;
  });
  if (personal) return nullptr;
  return std::make_shared<const std::vector<std::string>>(
      expand_acl(patterns, std::string(), nlohmann::json(), reserved_prefix));
}

SharedAcl expand_acl_shared(const SharedAcl& for_everyone, const std::vector<std::string>& patterns,
                            const std::string& user, const nlohmann::json& claims,
                            std::string_view reserved_prefix) {
  if (for_everyone) return for_everyone;
  return std::make_shared<const std::vector<std::string>>(
      expand_acl(patterns, user, claims, reserved_prefix));
}

bool subscribe_allowed(const std::vector<std::string>& expanded, std::string_view filter) {
  return std::any_of(expanded.begin(), expanded.end(),
                     [&](const std::string& allowed) { return filter_covers(allowed, filter); });
}

bool publish_allowed(const std::vector<std::string>& expanded, std::string_view topic) {
  return std::any_of(expanded.begin(), expanded.end(),
                     [&](const std::string& allowed) { return filter_matches(allowed, topic); });
}

bool delivery_allowed(const std::vector<std::string>& expanded, std::string_view topic) {
  constexpr std::string_view kShare = "$share/";
  return std::any_of(expanded.begin(), expanded.end(), [&](const std::string& allowed) {
    if (filter_matches(allowed, topic)) return true;
    if (!allowed.starts_with(kShare)) return false;
    // The subscription to exactly this topic in a group the pattern names (any one for a
    // wildcard group level): covered as SUBSCRIBE would check it.
    const std::string_view after = std::string_view(allowed).substr(kShare.size());
    std::string_view group = after.substr(0, after.find('/'));
    if (group == "+" || group == "#") group = "g";
    std::string shared;
    shared.reserve(kShare.size() + group.size() + 1 + topic.size());
    shared.append(kShare).append(group).append("/").append(topic);
    return filter_covers(allowed, shared);
  });
}

}  // namespace wsbridge::mqtt
