#include "handshake/upgrade_headers.hpp"

#include "wsbridge/http_client.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge {

namespace {

// lws_hdr_copy() into `char buf[128]` with room for the NUL: 126 bytes at most.
constexpr std::size_t kMaxListBytes = 126;
constexpr std::size_t kMaxProtocolNameBytes = 63;  // lws_tokenize_cstr() into `char name[64]`
constexpr std::size_t kMaxExtensionsBytes = 254;   // the answer is built from serv_buf[0..254]

// What lws' tokenizer (lws_tokenize, with LWS_TOKENIZE_F_COMMA_SEP_LIST) reads as a number, not
// a token: digits (an integer), digits with one '.' (a float); a second '.' there is an error.
bool number_to_lws(std::string_view element) {
  int digits = -1;  // -1: nothing yet, 1: digits so far, 0: not a number
  bool dot = false;
  for (const char c : element) {
    if (c == '.' && digits == 1) {
      if (dot) return true;
      dot = true;
      continue;
    }
    digits = c >= '0' && c <= '9' ? (digits < 0 ? 1 : digits) : 0;
  }
  return digits == 1;
}

// Calls `each` with every element of a comma-separated list in order, blanks around it trimmed,
// until it returns false. Empty elements come too: a leading, doubled or trailing comma is an
// error to lws' tokenizer, before it reaches the element it looks for.
template <typename Each>
void for_each_element(std::string_view list, Each each) {
  while (true) {
    const auto comma = list.find(',');
    if (!each(text::trim(list.substr(0, comma))) || comma == std::string_view::npos) return;
    list.remove_prefix(comma + 1);
  }
}

// An element lws reads as the one token of its place in a list.
bool lws_list_token(std::string_view element) {
  return is_http_token(element) && !number_to_lws(element);
}

}  // namespace

std::optional<std::string> upgrade_headers_problem(const UpgradeHeaders& h) {
  if (!h.connection) return "a WebSocket upgrade needs \"Connection: Upgrade\" (RFC 6455 4.1)";
  if (h.connection->size() > kMaxListBytes) {
    return "a Connection header over " + std::to_string(kMaxListBytes) +
           " bytes is not supported on an upgrade";
  }
  bool upgrade = false;
  bool malformed = false;
  for_each_element(*h.connection, [&](std::string_view element) {
    if (!lws_list_token(element)) return !(malformed = true);
    upgrade = text::iequals(element, "upgrade");
    return !upgrade;
  });
  if (malformed) return "a malformed Connection header (a list of tokens, RFC 9110 7.6.1)";
  if (!upgrade)
    return "a WebSocket upgrade needs the \"Upgrade\" token in Connection (RFC 6455 4.1)";

  if (h.protocols) {
    if (h.protocols->size() > kMaxListBytes) {
      return "a Sec-WebSocket-Protocol list over " + std::to_string(kMaxListBytes) +
             " bytes (bearer tokens apart) is not supported";
    }
    std::optional<std::string> problem;
    for_each_element(*h.protocols, [&](std::string_view name) {
      if (!lws_list_token(name)) {
        problem = "a Sec-WebSocket-Protocol entry that is not a token (RFC 6455 4.1)";
      } else if (name.size() > kMaxProtocolNameBytes) {
        problem = "a subprotocol name over " + std::to_string(kMaxProtocolNameBytes) +
                  " bytes is not supported";
      }
      // lws reads no further than the first name it knows.
      return !problem && !(h.known_protocol && h.known_protocol(name));
    });
    if (problem) return problem;
  }
  if (h.extensions_length > kMaxExtensionsBytes) {
    return "a Sec-WebSocket-Extensions offer over " + std::to_string(kMaxExtensionsBytes) +
           " bytes is not supported (offer permessage-deflate once, with its parameters)";
  }
  return std::nullopt;
}

std::optional<std::string> lws_selected_subprotocol(
    const std::vector<std::string>& offered,
    const std::function<bool(std::string_view)>& known_protocol, bool& offered_any) {
  offered_any = false;
  for (const std::string& name : offered) {
    if (name.starts_with("bearer.")) continue;
    offered_any = true;
    if (known_protocol && known_protocol(name)) return name;
  }
  return std::nullopt;
}

std::string joined_subprotocols(const std::vector<std::string>& route_subprotocols) {
  std::string joined;
  for (const auto& p : route_subprotocols) joined += (joined.empty() ? "" : ", ") + p;
  return joined;
}

std::string unsupported_subprotocol_reason(const std::vector<std::string>& route_subprotocols) {
  const std::string accepted = joined_subprotocols(route_subprotocols);
  return "no supported subprotocol offered (this route accepts: " +
         (accepted.empty() ? "none" : accepted) + ")";
}

}  // namespace wsbridge
