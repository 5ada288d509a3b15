// MQTT topic names and filters (MQTT 3.1.1 section 4.7, MQTT 5 section 4.7): validation,
// matching, and "covers" (every topic one filter can match is matched by another).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "wsbridge/utf8.hpp"

namespace wsbridge::mqtt {

inline constexpr std::size_t kMaxTopicBytes = 65535;

// MQTT 5's shared subscriptions ("$share/GROUP/FILTER"). The JSON and raw routes of one upstream
// are all one client of the broker, whose messages name their plain topic: a shared filter there
// was acknowledged and then matched nothing, so it is refused (the pass-through, where each
// browser is its own broker client, relays them).
inline constexpr std::string_view kSharedSubscriptionPrefix = "$share/";
// Whether `filter`, under a route's `topic_prefix`, reaches the broker as a shared subscription
// (under a prefix "$share" is an ordinary level: "t/$share/g/a").
inline bool is_shared_subscription(std::string_view topic_prefix, std::string_view filter) {
  return topic_prefix.empty() && filter.starts_with(kSharedSubscriptionPrefix);
}
inline constexpr std::string_view kNoSharedSubscriptions =
    "shared subscriptions ($share/...) are for MQTT clients of the broker; on a JSON or raw "
    "route every client shares wsbridge's one connection: subscribe to the topic itself (or use "
    "mode = \"passthrough\")";

// (Whether a payload is well-formed UTF-8: wsbridge::is_valid_utf8, wsbridge/utf8.hpp. NUL and
// control characters are valid UTF-8: payloads and WebSocket text may carry them.)

// Whether `text` is a string MQTT lets a receiver accept (MQTT 3.1.1 section 1.5.3, MQTT 5 section
// 1.5.4): valid UTF-8 without U+0000, the control characters U+0001-U+001F and U+007F-U+009F, and
// the noncharacters U+FDD0-U+FDEF, U+nFFFE and U+nFFFF. The spec lets a receiver close the
// connection on any of these, and mosquitto 2.0 does, for topics, filters, client ids and
// property strings alike: relayed, such a string read as the broker failing.
bool is_valid_mqtt_string(std::string_view text);
// Whether code point `c` is one of those is_valid_mqtt_string refuses.
bool is_mqtt_forbidden_code_point(std::uint32_t c);

// nullopt when `topic` is a valid topic name to publish to; otherwise a short reason such as
// "must not be empty", "must not contain wildcards ('+' or '#')", "must not contain NUL",
// "must be at most 65535 bytes", "must be valid UTF-8".
std::optional<std::string> topic_name_problem(std::string_view topic);

// nullopt when `filter` is a valid subscription filter: '+' only as a whole level, '#' only as
// the whole last level, plus the rules for names (non-empty, no NUL, <= 65535 bytes, UTF-8, an
// MQTT string).
std::optional<std::string> topic_filter_problem(std::string_view filter);

// Whether a valid `filter` matches a valid topic name. A filter starting with '+' or '#' does not
// match a topic starting with '$'. "a/#" matches "a" itself. Empty levels are levels ("a//b").
bool filter_matches(std::string_view filter, std::string_view topic);

// Whether every topic name that `inner` can match is also matched by `outer` (both valid
// filters). Used for subscribe ACLs: a subscription is allowed only if an allowed pattern covers
// it. Examples: "#" covers "a/+/c"; "a/+" covers "a/b" but not "a/#"; "a/#" covers "a";
// "+/x" does not cover "$SYS/x" (as '$' topics are not matched by a leading wildcard).
bool filter_covers(std::string_view outer, std::string_view inner);

}  // namespace wsbridge::mqtt
