// Small encoders used on the message path: JSON string escaping for frames built by hand (one
// allocation per frame, no DOM), and base64 (wsbridge/base64.hpp) for binary payloads.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "wsbridge/base64.hpp"

namespace wsbridge::mqtt {

// Appends `text` (valid UTF-8) as a JSON string literal with quotes: escapes '"', '\\' and
// control characters (\n \r \t \b \f, others as \u00XX); other bytes are copied as they are.
void append_json_string(std::string& out, std::string_view text);

}  // namespace wsbridge::mqtt
