// Small complete HTTP/1.1 responses written in one go: handshake refusals and /healthz.
#pragma once

#include <cstddef>
#include <string_view>
#include <utility>
#include <vector>

struct lws;

namespace wsbridge {

using HeaderList = std::vector<std::pair<std::string_view, std::string_view>>;

// Room for a response head of lws' own headers (status line, type, length: `base` bytes) and
// `headers`, whatever their length (a Location built from a long path, an echoed Origin): a
// fixed size dropped such answers without a word.
std::size_t response_head_room(const HeaderList& headers, std::size_t base);

// Writes status line, headers, Content-Length and body. Returns false when the write failed.
// The body must be small (it is written with the headers, in one buffer).
bool write_http_reply(lws* wsi, unsigned status, std::string_view content_type,
                      std::string_view body, const HeaderList& extra_headers = {});

}  // namespace wsbridge
