// Per-route access control for MQTT: lists of allowed filters, with placeholders filled in per
// connection from its identity ({user}, {claim.NAME}).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wsbridge::mqtt {

// nullopt when `pattern` is a valid ACL pattern: a valid topic filter once each placeholder is
// replaced by a plain level value; placeholders are "{user}" and "{claim.NAME}" (NAME: letters,
// digits, '_', '-', '.'); any other '{...}' or an unbalanced brace is a problem.
std::optional<std::string> acl_pattern_problem(std::string_view pattern);

// The patterns of one connection. A placeholder whose value is missing (anonymous user for
// {user}, absent claim), empty, not a string or integer, or contains '+', '#', '/' or NUL makes
// its pattern match nothing (the pattern is dropped): no claim can inject a wildcard or a level.
// So does a value starting with '$' at the very start of the pattern: a user named "$SYS" must
// not turn "{user}/#" into "$SYS/#".
//
// A pattern reaching the topics reserved for wsbridge itself (`reserved_prefix`, the cluster's
// control topics: [cluster] control_prefix) is dropped too, whatever granted it: no credential
// opens them to a client. The adapters always pass their route's reserved prefix.
std::vector<std::string> expand_acl(const std::vector<std::string>& patterns,
                                    const std::string& user, const nlohmann::json& claims,
                                    std::string_view reserved_prefix = {});

// An expansion shared by the connections it is the same for.
using SharedAcl = std::shared_ptr<const std::vector<std::string>>;

// expand_acl's result for every identity at once when no pattern has a placeholder (the list is
// then the same for every connection of the route: expanded once at configuration, not per
// connection); null when one has.
SharedAcl expand_acl_for_everyone(const std::vector<std::string>& patterns,
                                  std::string_view reserved_prefix = {});

// `for_everyone` when there is one (expand_acl_for_everyone of the same patterns), else the
// patterns expanded for this identity.
SharedAcl expand_acl_shared(const SharedAcl& for_everyone, const std::vector<std::string>& patterns,
                            const std::string& user, const nlohmann::json& claims,
                            std::string_view reserved_prefix = {});

// Whether `pattern` (a valid filter; a level holding a placeholder counts as '+') can match a
// topic equal to `prefix` or under it. A leading wildcard never matches a '$' topic.
bool reaches_prefix(std::string_view pattern, std::string_view prefix);

// A subscription to `filter` is allowed when one expanded pattern covers it (filter_covers).
bool subscribe_allowed(const std::vector<std::string>& expanded, std::string_view filter);
// A publish to `topic` is allowed when one expanded pattern matches it (filter_matches).
bool publish_allowed(const std::vector<std::string>& expanded, std::string_view topic);
// A message on `topic` may be delivered to a client with these subscribe patterns when some
// subscription they allow receives it: one pattern matches the topic, or covers the shared
// subscription "$share/GROUP/<topic>" (a broker delivers a shared subscription's messages under
// their own topics, without the group).
bool delivery_allowed(const std::vector<std::string>& expanded, std::string_view topic);

}  // namespace wsbridge::mqtt
