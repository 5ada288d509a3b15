// Small complete HTTP/1.1 responses written in one go: handshake refusals and /healthz.
#pragma once

#include <string_view>
#include <utility>
#include <vector>

struct lws;

namespace wsbridge {

using HeaderList = std::vector<std::pair<std::string_view, std::string_view>>;

// Writes status line, headers, Content-Length and body. Returns false when the write failed.
// The body must be small (it is written with the headers, in one buffer).
bool write_http_reply(lws* wsi, unsigned status, std::string_view content_type,
                      std::string_view body, const HeaderList& extra_headers = {});

}  // namespace wsbridge
