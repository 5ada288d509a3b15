#include "compression/shared_deflate.hpp"

#include <zlib.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <vector>

#include "wsbridge/metrics.hpp"

namespace wsbridge::shared_deflate {
namespace {

constexpr unsigned char kTrailer[4] = {0x00, 0x00, 0xff, 0xff};
constexpr int kMemLevel = 8;  // zlib's default: 128 KiB of hash tables per deflater (per thread)

// What operators see of it (/metrics): how often a message was deflated (once per variant, not
// per session), with what gain, and how often it was not worth it.
struct Counters {
  metrics::Counter& deflated;
  metrics::Counter& not_smaller;
  metrics::Counter& bytes_before;
  metrics::Counter& bytes_after;
  metrics::Counter& inflated;
};

Counters& counters() {
  auto& r = metrics::Registry::global();
  static Counters c{
      r.counter("wsbridge_deflated_messages_total",
                "outbound messages deflated (once per message and window/level, shared by every "
                "session that agreed them)"),
      r.counter("wsbridge_deflate_skipped_total",
                "outbound messages over the threshold sent uncompressed: deflate did not shrink "
                "them"),
      r.counter("wsbridge_deflate_input_bytes_total", "bytes of the messages deflated"),
      r.counter("wsbridge_deflate_output_bytes_total", "their compressed bytes"),
      r.counter("wsbridge_inflated_messages_total",
                "client messages inflated (shared compression)")};
  return c;
}

std::uint16_t key_of(int window_bits, int level) {
  return static_cast<std::uint16_t>(window_bits | level << 4);
}

// One deflater per (window, level) this thread has used; reset for each message.
class Deflaters {
 public:
  Deflaters() = default;
  Deflaters(const Deflaters&) = delete;
  Deflaters& operator=(const Deflaters&) = delete;
  ~Deflaters() {
    for (auto& d : streams_) deflateEnd(&d->stream);
  }
  z_stream& get(int window_bits, int level) {
    const std::uint16_t key = key_of(window_bits, level);
    for (auto& d : streams_) {
      if (d->key == key) {
        deflateReset(&d->stream);
        return d->stream;
      }
    }
    auto d = std::make_unique<Entry>();
    d->key = key;
    if (deflateInit2(&d->stream, level, Z_DEFLATED, -window_bits, kMemLevel, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
      throw std::runtime_error("deflateInit2 failed");
    }
    streams_.push_back(std::move(d));
    return streams_.back()->stream;
  }

 private:
  struct Entry {
    std::uint16_t key = 0;
    z_stream stream{};
  };
  std::vector<std::unique_ptr<Entry>> streams_;
};

// One raw inflater with the largest window (it reads streams of any smaller window too).
class Inflater {
 public:
  Inflater() = default;
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  ~Inflater() {
    if (ready_) inflateEnd(&stream_);
  }
  z_stream& get() {
    if (!ready_) {
      if (inflateInit2(&stream_, -15) != Z_OK) throw std::runtime_error("inflateInit2 failed");
      ready_ = true;
    } else {
      inflateReset(&stream_);
    }
    return stream_;
  }

 private:
  z_stream stream_{};
  bool ready_ = false;
};

}  // namespace

WireFormat format_for(int window_bits, int level, std::size_t threshold) {
  WireFormat f;
  if (window_bits == 8) window_bits = 9;  // (see the header: distances stay within 256)
  if (window_bits >= 9 && window_bits <= 15 && level >= 1 && level <= 9) {
    f.key = key_of(window_bits, level);
  }
  f.threshold = threshold;
  return f;
}

std::optional<std::string> deflate_message(std::string_view payload, int window_bits, int level) {
  thread_local Deflaters deflaters;
  z_stream& z = deflaters.get(window_bits, level);
  std::string out(kFrameHeadroom, '\0');
  // Sync flush output fits deflateBound plus its empty stored block; more room is added if not.
  out.resize(kFrameHeadroom + deflateBound(&z, payload.size()) + 16);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(payload.data()));
  z.avail_in = static_cast<uInt>(payload.size());
  std::size_t produced = kFrameHeadroom;
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    z.avail_out = static_cast<uInt>(out.size() - produced);
    const int rc = deflate(&z, Z_SYNC_FLUSH);
    produced = out.size() - z.avail_out;
    if (rc != Z_OK && rc != Z_BUF_ERROR) throw std::runtime_error("deflate failed");
    if (z.avail_out != 0) break;  // all input consumed and flushed
    out.resize(out.size() * 2);
  }
  out.resize(produced);
  const std::size_t compressed = produced - kFrameHeadroom;
  if (compressed < 4 || std::string_view(out).substr(produced - 4) !=
                            std::string_view(reinterpret_cast<const char*>(kTrailer), 4)) {
    throw std::runtime_error("deflate output does not end with a sync flush");
  }
  if (compressed - 4 >= payload.size()) return std::nullopt;
  out.resize(produced - 4);
  return out;
}

WireView wire_view(const Frame& frame, const WireFormat& format) {
  if (!format.compresses() || frame.size() < format.threshold || frame.size() == 0) {
    return {frame.payload(), false};
  }
  const FrameVariant* v = frame.find_variant(format.key);
  if (v == nullptr) {
    auto made = std::make_unique<FrameVariant>();
    made->key = format.key;
    Counters& c = counters();
    if (auto bytes = deflate_message(frame.payload(), format.key & 0xf, format.key >> 4)) {
      made->compressed = true;
      made->bytes = std::move(*bytes);
      c.deflated.inc();
      c.bytes_before.inc(frame.size());
      c.bytes_after.inc(made->bytes.size() - kFrameHeadroom);
    } else {
      c.not_smaller.inc();
    }
    v = &frame.publish_variant(std::move(made));
  }
  if (!v->compressed) return {frame.payload(), false};
  return {std::string_view(v->bytes).substr(kFrameHeadroom), true};
}

void prepare(const Frame& frame, const WireFormat& format) {
  (void)wire_view(frame, format);
}

Inflated inflate_message(std::string_view compressed, std::size_t limit) {
  counters().inflated.inc();
  thread_local Inflater inflater;
  z_stream& z = inflater.get();
  Inflated result;
  std::string& out = result.bytes;
  out.assign(kFrameHeadroom, '\0');
  // No bytes at all: an empty message (a sender's empty flush block is "00"; none is as clear).
  if (compressed.empty()) return result;
  // Two pieces of input: the message, then the trailer its sender removed.
  std::string_view pieces[2] = {compressed,
                                std::string_view(reinterpret_cast<const char*>(kTrailer), 4)};
  bool ended = false;
  bool boundary_after_message = false;  // the message's own bytes ended a block
  for (std::string_view piece : pieces) {
    if (ended) break;
    if (piece.data() == pieces[1].data()) boundary_after_message = (z.data_type & 128) != 0;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(piece.data()));
    z.avail_in = static_cast<uInt>(piece.size());
    for (;;) {
      const std::size_t have = out.size() - kFrameHeadroom;
      // Grow by what is likely needed, never far past the limit (+1: to see it passed).
      const std::size_t room = std::clamp<std::size_t>(
          std::max<std::size_t>(piece.size() * 4, 4096), 1, limit + 1 - std::min(limit, have));
      out.resize(out.size() + room);
      z.next_out = reinterpret_cast<Bytef*>(out.data() + out.size() - room);
      z.avail_out = static_cast<uInt>(room);
      const int rc = inflate(&z, Z_SYNC_FLUSH);
      out.resize(out.size() - z.avail_out);
      if (out.size() - kFrameHeadroom > limit) {
        result.status = InflateStatus::kTooLarge;
        out.clear();
        return result;
      }
      if (rc == Z_STREAM_END) {  // a final block: nothing but the trailer may follow it
        ended = true;
        if (z.avail_in > 0 && piece.data() != pieces[1].data()) {
          result.status = InflateStatus::kCorrupt;
          out.clear();
          return result;
        }
        break;
      }
      if (rc == Z_BUF_ERROR) break;  // no progress possible: this piece is used up
      if (rc != Z_OK) {
        result.status = InflateStatus::kCorrupt;
        out.clear();
        return result;
      }
      if (z.avail_in == 0 && z.avail_out != 0) break;  // used up, and nothing more is pending
    }
  }
  // With the trailer in, a whole message ends at a block boundary (zlib: data_type bit 128, the
  // inflater waiting for a block header). One cut inside a block would otherwise pass as what
  // was inflated of it, and the trailer itself could come out as data: a stored block's header
  // with no data took its 4 bytes as the block's content (a hostile probe). A message whose own
  // bytes ended a block (a sender that left out the empty flush block) is whole too: what the
  // trailer begins then is a block header that produces nothing.
  if (!ended && !boundary_after_message && (z.data_type & 128) == 0) {
    result.status = InflateStatus::kCorrupt;
    out.clear();
  }
  return result;
}

}  // namespace wsbridge::shared_deflate
