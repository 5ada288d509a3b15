// Small encoders used on the message path: base64 for binary payloads and JSON string escaping
// for frames built by hand (one allocation per frame, no DOM).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wsbridge::mqtt {

// Standard alphabet with '=' padding (RFC 4648 section 4).
std::string base64_encode(std::string_view bytes);
// Accepts the standard alphabet, with or without padding; whitespace is not allowed.
// nullopt on any invalid character or length.
std::optional<std::string> base64_decode(std::string_view text);

// Appends `text` (valid UTF-8) as a JSON string literal with quotes: escapes '"', '\\' and
// control characters (\n \r \t \b \f, others as \u00XX); other bytes are copied as they are.
void append_json_string(std::string& out, std::string_view text);

}  // namespace wsbridge::mqtt
