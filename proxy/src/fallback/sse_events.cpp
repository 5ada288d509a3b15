#include "fallback/sse_events.hpp"

#include <charconv>

#include "wsbridge/base64.hpp"

namespace wsbridge::fallback {

namespace {

// Outside the deflate variants' keys (window bits | level << 4 < 0x100).
constexpr std::uint16_t kSseVariantKey = 0xF5E0;

}  // namespace

std::string_view sse_event_body(const Frame& frame) {
  const FrameVariant* variant = frame.find_variant(kSseVariantKey);
  if (variant == nullptr) {
    auto built = std::make_unique<FrameVariant>();
    built->key = kSseVariantKey;
    append_message_body(built->bytes, frame.is_binary(), frame.payload());
    variant = &frame.publish_variant(std::move(built));  // (another thread's may win: the same)
  }
  return variant->bytes;
}

// (std::to_chars: snprintf's format parsing was 6% of a saturated SSE server, which writes this
// line once per message and session.)
void append_event_id(std::string& out, std::uint64_t id) {
  char line[32] = "id: ";
  char* end = std::to_chars(line + 4, line + sizeof line - 1, id).ptr;
  *end++ = '\n';
  out.append(line, static_cast<std::size_t>(end - line));
}

void append_message_event(std::string& out, std::uint64_t id, bool binary,
                          std::string_view payload) {
  append_event_id(out, id);
  append_message_body(out, binary, payload);
}

void append_message_body(std::string& out, bool binary, std::string_view payload) {
  const bool plain = !binary && !payload.empty() && payload.find('\r') == std::string_view::npos;
  if (!plain) {
    out += "event: frame\ndata: ";
    out += binary ? 'b' : 't';
    out += base64_encode(payload);
    out += "\n\n";
    return;
  }
  // Each line of the text is a data line; EventSource joins them with LF again. (A text ending
  // in LF gets an empty last data line, which restores that LF.)
  std::size_t start = 0;
  while (true) {
    const auto end = payload.find('\n', start);
    out += "data: ";
    out.append(payload.substr(start, end == std::string_view::npos ? end : end - start));
    out += '\n';
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  out += '\n';
}

void append_control_event(std::string& out, std::uint64_t last_id, std::string_view json) {
  append_event_id(out, last_id);
  out += "event: control\ndata: ";
  out.append(json);
  out += "\n\n";
}

}  // namespace wsbridge::fallback
