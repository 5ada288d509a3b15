// Private to the proxy's head parsers (request_head.cpp defines them; response_head.cpp and
// body_follower.cpp use them): one reading of a field line for requests, responses and chunked
// trailers, declared once so the three cannot drift apart.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "wsbridge/http_client.hpp"

namespace wsbridge::reverse_proxy::detail {

bool parse_field_line(std::string_view line, HttpHeader& field, std::string& why);
bool parse_fields(std::string_view rest, HttpHeaders& fields, std::string& why);
bool list_has(const HttpHeaders& fields, std::string_view name, std::string_view token);
bool content_length(const HttpHeaders& fields, bool& present, std::uint64_t& length,
                    std::string& why);
// (Transfer-Encoding: http1::transfer_coding, which the HTTP client's parser reads it with too.)

}  // namespace wsbridge::reverse_proxy::detail
