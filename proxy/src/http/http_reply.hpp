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

// A POST, PUT or PATCH that gives no length (neither Content-Length nor Transfer-Encoding): its
// body is empty (RFC 9112 6.3), but lws 4.1.6 reads one on to 100 MiB, so whatever the client
// sent next would go into it unanswered. The answer to it is the connection's last.
bool body_runs_to_close(lws* wsi);

// Writes status line, headers, Content-Length and body ("Connection: close" added where
// body_runs_to_close). Returns false when the write failed. The body must be small (it is written
// with the headers, in one buffer).
bool write_http_reply(lws* wsi, unsigned status, std::string_view content_type,
                      std::string_view body, const HeaderList& extra_headers = {});

}  // namespace wsbridge
