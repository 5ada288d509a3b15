// The HTTP side's parsers, on hostile input: a backend's response bytes (http1::ResponseParser)
// and a client's rpc request frame (http::parse_rpc_request).
//
// Checked:
// - the response parser never crashes; fed the same bytes whole or split at any point it reaches
//   the same state and the same status and body; a completed body never exceeds the limit; a
//   response reported too large is an error;
// - parse_rpc_request never crashes or throws; an accepted request has an allowed method, a path
//   that path_allowed accepts and that no number of percent-decodings turns into one with ';',
//   '\', "//" or a dot-segment, and headers without CR, LF or NUL, none reserved or trusted (but
//   the one the policy allows), none twice in two spellings; the response and error frames built
//   for it are valid JSON objects.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fuzz_check.hpp"
#include "http/http1.hpp"
#include "rpc.hpp"

namespace {

using namespace wsbridge;

[[noreturn]] void fail(const char* what, std::string_view detail) {
  wsbridge_fuzz::fail("fuzz_http", what, {detail});
}

void check_response(std::string_view bytes, std::size_t split) {
  constexpr std::size_t kLimit = 4096;
  http1::ResponseParser whole(kLimit);
  auto a = whole.feed(bytes.data(), bytes.size());
  if (a == http1::ResponseParser::State::kIncomplete) a = whole.finish();
  http1::ResponseParser parts(kLimit);
  split = bytes.empty() ? 0 : split % bytes.size();
  auto b = parts.feed(bytes.data(), split);
  if (b == http1::ResponseParser::State::kIncomplete) {
    b = parts.feed(bytes.data() + split, bytes.size() - split);
  }
  if (b == http1::ResponseParser::State::kIncomplete) b = parts.finish();
  if (a != b) fail("split input parsed differently", bytes);
  if (whole.too_large() && a != http1::ResponseParser::State::kError) {
    fail("too large but not an error", bytes);
  }
  if (a == http1::ResponseParser::State::kComplete) {
    HttpResponse r1 = whole.take();
    HttpResponse r2 = parts.take();
    if (r1.status != r2.status || r1.body != r2.body)
      fail("split input gave another response", bytes);
    if (r1.status < 200 || r1.status > 999) fail("status out of range", bytes);
    if (r1.body.size() > kLimit) fail("body over the limit", bytes);
    const Frame f = http::response_frame(1, r1);
    auto doc = nlohmann::json::parse(f.payload(), nullptr, false);
    if (!doc.is_object()) fail("response frame is not a JSON object", f.payload());
  }
}

// An oracle independent of path_rules.cpp: the path part, percent-decoded again and again as a
// careless backend might, has no ';', '\', "//" or dot-segment.
bool decodes_to_a_plain_path(std::string_view target) {
  std::string path(target.substr(0, target.find('?')));
  for (int round = 0; round < 8; ++round) {
    std::string next;
    for (std::size_t i = 0; i < path.size(); ++i) {
      if (path[i] == '%' && i + 2 < path.size() &&
          std::isxdigit(static_cast<unsigned char>(path[i + 1])) &&
          std::isxdigit(static_cast<unsigned char>(path[i + 2]))) {
        next += static_cast<char>(std::stoi(path.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        next += path[i];
      }
    }
    const std::string p = path + "/";
    if (p.find_first_of(";\\") != std::string::npos || path.find("//") != std::string::npos ||
        p.find("/./") != std::string::npos || p.find("/../") != std::string::npos) {
      return false;
    }
    if (next == path) return true;
    path = std::move(next);
  }
  return false;
}

void check_rpc(std::string_view text) {
  const http::RpcPolicy policy{{"GET", "POST"}, {"/api/", "/orders"}, {"x-forwarded-proto"}};
  auto parsed = http::parse_rpc_request(Frame::text(text), policy);
  if (auto* refusal = std::get_if<http::RpcRefusal>(&parsed)) {
    const Frame f = http::error_frame(refusal->id, refusal->code, refusal->message);
    if (!nlohmann::json::parse(f.payload(), nullptr, false).is_object()) {
      fail("error frame is not a JSON object", f.payload());
    }
    return;
  }
  const auto& call = std::get<http::RpcCall>(parsed);
  if (call.request.method != "GET" && call.request.method != "POST") {
    fail("a method outside the policy was accepted", text);
  }
  std::string why;
  if (!http::path_allowed(call.request.target, policy.paths, why)) {
    fail("a path outside the policy was accepted", text);
  }
  if (!decodes_to_a_plain_path(call.request.target)) {
    fail("an accepted path decodes to a separator, parameter or dot-segment", text);
  }
  std::vector<std::string> names;
  for (const auto& h : call.request.headers) {
    if (!safe_header_value(h.value) || !is_http_token(h.name)) {
      fail("an unsafe header was accepted", text);
    }
    const auto kind = http::classify_header(h.name);
    const std::string canonical = http::canonical_header_name(h.name);
    if (kind == http::HeaderClass::kReserved ||
        (kind == http::HeaderClass::kTrusted && canonical != "x-forwarded-proto")) {
      fail("a reserved or trusted header was accepted", text);
    }
    if (std::find(names.begin(), names.end(), canonical) != names.end()) {
      fail("one header was accepted in two spellings", text);
    }
    names.push_back(canonical);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::size_t split = size > 0 ? data[0] : 0;
  check_response(bytes, split);
  check_rpc(bytes);
  return 0;
}
