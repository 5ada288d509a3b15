// What child_http*.cpp share: where an HTTP transport's response and session stand.
#pragma once

#include <cstdint>

namespace bench {

// Conn::http: where the response on a connection stands.
enum HttpResponseState : std::uint8_t { kNoRequest = 0, kHead = 1, kBody = 2 };
// Conn::mq_state of a down connection (the session): opening until the server names it.
enum HttpSessionState : std::uint8_t { kOpening = 0, kSessionOpen = 1 };

}  // namespace bench
