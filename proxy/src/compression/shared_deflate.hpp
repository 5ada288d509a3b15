// The shared mode of permessage-deflate (docs/ARCHITECTURE.md "Compression"): every server
// message is deflated on its own (server_no_context_takeover), so the compressed bytes of a
// message are the same for every session with the same window and level. They are built once,
// kept with the frame as a FrameVariant and written, RSV1 set, to each of those sessions as the
// uncompressed bytes are: no per-connection deflate stream, no per-connection copy. Inbound,
// clients compress each message on their own too (client_no_context_takeover), so one inflater
// per thread serves every connection.
//
// zlib streams live in thread_local storage: the thread that fans a message out (an adapter's)
// deflates it before handing it to the shards; a shard deflates what was sent to one session.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "wsbridge/frame.hpp"

namespace wsbridge::shared_deflate {

// How a session is sent frames: which variant, and from which size on.
struct WireFormat {
  std::uint16_t key = 0;  // 0: never compressed
  std::size_t threshold = 0;
  bool compresses() const { return key != 0; }
};

// The format of a session that agreed to `window_bits` (8..15) at `level` (1..9). zlib cannot
// write raw deflate with an 8-bit window: such sessions get uncompressed frames (always legal).
WireFormat format_for(int window_bits, int level, std::size_t threshold);

// What goes on the wire for `frame` to a session of `format`: the compressed variant (built now
// if no thread has built it yet) or the payload as it is.
struct WireView {
  std::string_view payload;
  bool compressed = false;  // RSV1
};
WireView wire_view(const Frame& frame, const WireFormat& format);

// Builds the variant of `frame` for `format` if it will be needed (fan-out calls this on the
// sending thread, so the shards find it ready).
void prepare(const Frame& frame, const WireFormat& format);

// Raw deflate of one message, Z_SYNC_FLUSH, the final 00 00 ff ff removed (RFC 7692 7.2.1), with
// kFrameHeadroom bytes in front. nullopt when it would not be smaller than `payload`.
std::optional<std::string> deflate_message(std::string_view payload, int window_bits, int level);

enum class InflateStatus : std::uint8_t { kOk, kTooLarge, kCorrupt };
struct Inflated {
  InflateStatus status = InflateStatus::kOk;
  std::string bytes;  // kFrameHeadroom bytes, then the message (kOk only)
};
// Inflates one client message (00 00 ff ff appended, RFC 7692 7.2.2), stopping as soon as the
// output passes `limit` bytes: a small message that inflates to gigabytes costs `limit`, no more.
Inflated inflate_message(std::string_view compressed, std::size_t limit);

}  // namespace wsbridge::shared_deflate
