// The JSON protocol of mqtt routes: parse_request on arbitrary text, and the frames built from
// what it returns must be valid JSON saying what was parsed.
//
// Checked:
// - parse_request never crashes or throws;
// - a parsed request has a valid topic (a name for publish, a filter otherwise) and qos 0..2;
// - message_frame(topic, payload, qos, retain) of a parsed publish (what the broker would deliver
//   back) is one valid JSON object with that topic, qos and retain, and a payload that gives back
//   the published bytes: "payload" as their JSON value or as a string of them, or "payload_b64"
//   (only for bytes that are not UTF-8);
// - message_frame with the raw input as the payload (any bytes a broker may deliver) likewise;
// - ack/pong/error frames built from the parsed id or the error are valid JSON.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>

#include "codec.hpp"
#include "fuzz_check.hpp"
#include "protocol.hpp"
#include "topic.hpp"

namespace {

using nlohmann::json;
using namespace wsbridge;
using namespace wsbridge::mqtt;

[[noreturn]] void fail(const char* what, std::string_view detail) {
  wsbridge_fuzz::fail("fuzz_protocol", what, {detail});
}

json parse_frame(const Frame& frame) {
  if (!frame.is_text()) fail("frame is not a text frame", frame.payload());
  json doc = json::parse(frame.payload(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) fail("frame is not valid JSON", frame.payload());
  if (!doc.is_object()) fail("frame is not a JSON object", frame.payload());
  return doc;
}

void check_message_frame(std::string_view topic, std::string_view payload, int qos, bool retain) {
  const Frame frame = message_frame(topic, payload, qos, retain);
  const json doc = parse_frame(frame);
  if (doc.value("type", "") != "message")
    fail("message frame without type message", frame.payload());
  if (!doc.contains("topic") || !doc["topic"].is_string() ||
      doc["topic"].get<std::string>() != topic) {
    fail("message frame topic differs", frame.payload());
  }
  if (!doc.contains("qos") || doc["qos"] != qos) fail("message frame qos differs", frame.payload());
  if (!doc.contains("retain") || doc["retain"] != retain) {
    fail("message frame retain differs", frame.payload());
  }
  const bool has_payload = doc.contains("payload");
  const bool has_b64 = doc.contains("payload_b64");
  if (has_payload == has_b64)
    fail("message frame needs exactly one payload field", frame.payload());
  if (has_b64) {
    if (!doc["payload_b64"].is_string()) fail("payload_b64 not a string", frame.payload());
    const auto decoded = base64_decode(doc["payload_b64"].get<std::string>());
    if (!decoded || *decoded != payload)
      fail("payload_b64 does not decode to the payload", frame.payload());
    return;
  }
  if (!is_valid_utf8(payload))
    fail("a payload that is not UTF-8 was not sent as base64", frame.payload());
  // As JSON when the payload is JSON (then it means the same JSON value), else as a string of
  // exactly the payload's bytes. Whether a payload counts as JSON is the implementation's call
  // (nlohmann's own parser is lenient: it stops at a NUL and skips a leading BOM), so either form
  // is accepted here as long as the frame itself is valid JSON and says the same thing.
  const json& sent = doc["payload"];
  if (sent.is_string() && sent.get_ref<const std::string&>() == payload) return;
  const json as_json = json::parse(payload, nullptr, false);
  if (payload.empty() || as_json.is_discarded() || sent != as_json) {
    fail("the frame's payload is neither the payload's bytes nor its JSON value", frame.payload());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const auto result = parse_request(text);
  if (const auto* request = std::get_if<Request>(&result)) {
    if (request->qos < 0 || request->qos > 2) fail("qos out of range", text);
    if (request->type != RequestType::kPing) {
      const auto problem = request->type == RequestType::kPublish
                               ? topic_name_problem(request->topic)
                               : topic_filter_problem(request->topic);
      if (problem) fail("parsed request with an invalid topic", text);
    }
    if (request->id && !request->id->is_string() && !request->id->is_number()) {
      fail("id neither string nor number", text);
    }
    if (request->type == RequestType::kPublish) {
      check_message_frame(request->topic, request->payload, request->qos, request->retain);
    }
    if (request->id) parse_frame(ack_frame(*request->id));
    parse_frame(pong_frame(request->id));
  } else {
    const auto& error = std::get<RequestError>(result);
    if (error.code != "bad_request") fail("error code is not bad_request", text);
    parse_frame(error_frame(error.id, error.code, error.message));
  }

  // Whatever bytes a broker delivers, on a valid topic.
  check_message_frame("fuzz/topic", text, static_cast<int>(size % 3), (size & 4) != 0);
  return 0;
}
