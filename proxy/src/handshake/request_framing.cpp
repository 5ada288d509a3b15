#include "handshake/request_framing.hpp"

#include "wsbridge/text.hpp"

#include <algorithm>
#include <cctype>
#include <string_view>

namespace wsbridge {

namespace {

bool digits(std::string_view s) {
  return !s.empty() && s.size() <= 18 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

// Repeated headers, or one header with a list ("5, 5"), must all say the same number.
struct Lengths {
  std::optional<unsigned long long> length;
  const char* problem = nullptr;
};
Lengths read_lengths(const std::vector<std::string>& content_lengths) {
  Lengths out;
  for (const std::string& header : content_lengths) {
    std::string_view rest = header;
    while (true) {
      const auto comma = rest.find(',');
      const std::string_view value = text::trim(rest.substr(0, comma));
      if (!digits(value)) return {std::nullopt, "invalid Content-Length"};
      const unsigned long long n = std::stoull(std::string(value));
      if (out.length && *out.length != n) return {std::nullopt, "conflicting Content-Length"};
      out.length = n;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return out;
}

}  // namespace

std::optional<unsigned long long> agreed_content_length(
    const std::vector<std::string>& content_lengths) {
  return read_lengths(content_lengths).length;
}

std::optional<FramingRefusal> request_framing_problem(
    const std::vector<std::string>& content_lengths,
    const std::optional<std::string>& transfer_encoding, RequestBodyKind kind) {
  const bool upgrade = kind == RequestBodyKind::kUpgrade;
  if (transfer_encoding && !content_lengths.empty()) {
    return FramingRefusal{400, "both Content-Length and Transfer-Encoding"};
  }
  if (transfer_encoding) {
    return FramingRefusal{upgrade ? 400u : 411u,
                          upgrade ? "an upgrade request has no body"
                                  : "Transfer-Encoding is not supported here: send Content-Length"};
  }
  const Lengths lengths = read_lengths(content_lengths);
  if (lengths.problem != nullptr) return FramingRefusal{400, lengths.problem};
  if (upgrade && lengths.length.value_or(0) > 0) {
    return FramingRefusal{400, "an upgrade request has no body"};
  }
  if (kind == RequestBodyKind::kLengthRequired && !lengths.length) {
    return FramingRefusal{411, "send Content-Length with a POST, PUT or PATCH (0 for no body)"};
  }
  return std::nullopt;
}

}  // namespace wsbridge
