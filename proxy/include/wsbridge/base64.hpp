// Standard base64 (RFC 4648 section 4, with padding) for payloads carried in JSON.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wsbridge {

std::string base64_encode(std::string_view bytes);
// nullopt for text that is not padded base64 of the standard alphabet.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace wsbridge
