#include "compression/deflate_offer.hpp"

#include <algorithm>
#include <vector>

#include "wsbridge/text.hpp"

namespace wsbridge::deflate_offer {
namespace {

using text::trim;

// Splits on `sep` outside double quotes.
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  bool quoted = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '"') quoted = !quoted;
    if (s[i] == sep && !quoted) {
      parts.push_back(trim(s.substr(start, i - start)));
      start = i + 1;
    }
  }
  parts.push_back(trim(s.substr(start)));
  return parts;
}

// 8..15, as a token or a quoted string (RFC 7692 7.1.2: "1*DIGIT", quotes allowed by 6455 9.1).
std::optional<int> window_value(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  if (v.empty() || v.size() > 2 ||
      !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const int n = std::stoi(std::string(v));
  if (v.size() == 2 && v[0] == '0') return std::nullopt;  // no leading zeros (RFC 7692 7.1.2.1)
  if (n < 8 || n > 15) return std::nullopt;
  return n;
}

struct Offer {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  std::optional<int> server_max_window_bits;
  bool client_max_window_bits = false;  // the client can be told a window (we never need to)
};

std::optional<Offer> parse_offer(const std::vector<std::string_view>& params) {
  Offer offer;
  bool seen[4] = {};
  for (std::size_t i = 1; i < params.size(); ++i) {
    const std::string_view p = params[i];
    const auto eq = p.find('=');
    const std::string_view name = trim(p.substr(0, eq));
    const std::optional<std::string_view> value =
        eq == std::string_view::npos ? std::nullopt
                                     : std::optional<std::string_view>(trim(p.substr(eq + 1)));
    int which = -1;
    if (name == "server_no_context_takeover") which = 0;
    if (name == "client_no_context_takeover") which = 1;
    if (name == "server_max_window_bits") which = 2;
    if (name == "client_max_window_bits") which = 3;
    if (which < 0 || seen[which]) return std::nullopt;  // unknown or repeated: decline
    seen[which] = true;
    switch (which) {
      case 0:
      case 1:
        if (value) return std::nullopt;
        (which == 0 ? offer.server_no_context_takeover : offer.client_no_context_takeover) = true;
        break;
      case 2:
        if (!value) return std::nullopt;  // a value is required
        offer.server_max_window_bits = window_value(*value);
        if (!offer.server_max_window_bits) return std::nullopt;
        break;
      case 3:
        if (value && !window_value(*value)) return std::nullopt;
        offer.client_max_window_bits = true;
        break;
    }
  }
  return offer;
}

}  // namespace

std::optional<Agreement> negotiate(std::string_view header, int window_bits) {
  for (const std::string_view extension : split(header, ',')) {
    const auto params = split(extension, ';');
    if (params.empty() || params[0] != "permessage-deflate") continue;
    const std::optional<Offer> offer = parse_offer(params);
    if (!offer) continue;
    Agreement a;
    a.server_window_bits = std::min(window_bits, offer->server_max_window_bits.value_or(15));
    a.response = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    // Said when the client asked for a limit (it must be answered) or ours is below the default.
    if (offer->server_max_window_bits || a.server_window_bits < 15) {
      a.response += "; server_max_window_bits=" + std::to_string(a.server_window_bits);
    }
    return a;
  }
  return std::nullopt;
}

}  // namespace wsbridge::deflate_offer
