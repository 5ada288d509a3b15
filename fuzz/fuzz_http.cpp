// The HTTP side's parsers, on hostile input: a backend's response bytes (http1::ResponseParser)
// and a client's rpc request frame (http::parse_rpc_request).
//
// Checked:
// - the response parser never crashes; fed the same bytes whole or split at any point it reaches
//   the same state and the same status and body; a completed body never exceeds the limit; a
//   response reported too large is an error;
// - parse_rpc_request never crashes or throws; an accepted request has an allowed method, a path
//   that path_allowed accepts, and headers without CR, LF or NUL and none reserved; the response
//   and error frames built for it are valid JSON objects.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_check.hpp"
#include "http1.hpp"
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

void check_rpc(std::string_view text) {
  const http::RpcPolicy policy{{"GET", "POST"}, {"/api/", "/orders"}};
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
  for (const auto& h : call.request.headers) {
    if (!safe_header_value(h.value) || !is_http_token(h.name)) {
      fail("an unsafe header was accepted", text);
    }
    if (http::reserved_header(h.name)) {
      fail("a reserved header was accepted", text);
    }
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
