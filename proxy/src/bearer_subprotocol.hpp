// Browsers cannot set headers on a WebSocket, so a token may ride in Sec-WebSocket-Protocol as
// "bearer.<token>" beside a real subprotocol. libwebsockets 4.1.6 refuses protocol names over
// 64 bytes and lists over 128 ("pcol name too long"), which every real JWT exceeds, so the token
// is taken out of the request head before lws parses it (see mask_guard's recv() hook) and handed
// to the authenticator separately.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace wsbridge {

struct BearerExtraction {
  std::string token;         // the first bearer.<token> value
  bool only_bearer = false;  // the header offered no real subprotocol beside it
};

// Looks in `data[0..len)` for a complete "Sec-WebSocket-Protocol:" header line (case-insensitive
// name, CRLF-terminated, entirely inside the buffer). When it lists bearer.<token> entries,
// removes them from the line in place (dropping the line when nothing else is left), shrinks
// `len` accordingly and returns the token. nullopt (and no change) otherwise.
std::optional<BearerExtraction> extract_bearer_subprotocol(char* data, std::size_t& len);

}  // namespace wsbridge
