// Server-sent events of a fallback stream (docs/FALLBACK.md, "SSE"): how a message, a control
// message and a heartbeat are written. Each message event carries its id, so an EventSource (or
// the client library) can say where to resume.
#pragma once

#include <cstdint>

#include <string>
#include <string_view>
#include "wsbridge/frame.hpp"

namespace wsbridge::fallback {

// The event of a message without its `id:` line: the same for every session, so it is built once
// per message (a variant of the frame, sse_event_body) and only the id is written per session.
void append_message_body(std::string& out, bool binary, std::string_view payload);
// That body, built on first use and kept on the frame (FrameVariant kSseVariantKey) for every
// session on any thread.
std::string_view sse_event_body(const Frame& frame);

// Appends the `id:` line of event `id` (every event carries one: a message's own id, a control
// event's the last message's).
void append_event_id(std::string& out, std::uint64_t id);

// Appends message `id`: plain `data:` lines for non-empty text without CR (the common case, and
// readable by any EventSource), else `event: frame` with "t" or "b" and the payload in base64.
void append_message_event(std::string& out, std::uint64_t id, bool binary,
                          std::string_view payload);

// Appends `event: control` with `json` (one line), tagged with the last message id so far.
void append_control_event(std::string& out, std::uint64_t last_id, std::string_view json);

// Told to a stream that names a session that is not there (or no longer): an EventSource sees no
// status, only events. (Polls and POSTs get 404.)
inline constexpr std::string_view kUnknownSessionControl =
    R"({"type":"unknown_session","message":"unknown or expired session: open a new one"})";

// A comment line: keeps proxies and the browser from timing the stream out.
inline constexpr std::string_view kHeartbeat = ": hb\n\n";

}  // namespace wsbridge::fallback
