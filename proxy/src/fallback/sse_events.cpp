#include "fallback/sse_events.hpp"

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

void append_message_event(std::string& out, std::uint64_t id, bool binary,
                          std::string_view payload) {
  out += "id: ";
  out += std::to_string(id);
  out += '\n';
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
  out += "id: ";
  out += std::to_string(last_id);
  out += "\nevent: control\ndata: ";
  out.append(json);
  out += "\n\n";
}

}  // namespace wsbridge::fallback
