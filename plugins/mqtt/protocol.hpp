// The JSON protocol (version 1) of mqtt routes: parsing browser requests and building the
// frames sent back. docs/PROTOCOL.md describes it for users.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "wsbridge/frame.hpp"

namespace wsbridge::mqtt {

enum class RequestType { kSubscribe, kUnsubscribe, kPublish, kPing };

struct Request {
  RequestType type = RequestType::kPing;
  std::optional<nlohmann::json> id;  // a string or a number, echoed in the ack or error
  std::string topic;                 // filter for (un)subscribe, name for publish
  int qos = 0;
  bool retain = false;
  std::string payload;  // publish: bytes to send
};

struct RequestError {
  std::optional<nlohmann::json> id;
  std::string code;  // bad_request, ...
  std::string message;
};

// Parses and validates one text frame. Every problem is a RequestError with code bad_request
// and a message a developer can act on; the id is kept when it could be read.
std::variant<Request, RequestError> parse_request(std::string_view text);

Frame ack_frame(const nlohmann::json& id);
Frame error_frame(const std::optional<nlohmann::json>& id, std::string_view code,
                  std::string_view message);
Frame pong_frame(const std::optional<nlohmann::json>& id);
Frame status_frame(bool upstream_up);
// {"type":"status","dropped":N}: messages discarded for a slow client (drop_oldest routes).
Frame dropped_frame(std::uint64_t count);

// {"type":"message","topic":...,"payload":...,"qos":...,"retain":...}: the payload as JSON when
// it parses as JSON, else as a string when it is UTF-8, else base64 in "payload_b64".
Frame message_frame(std::string_view topic, std::string_view payload, int qos, bool retain);

}  // namespace wsbridge::mqtt
