// How a listener or route compresses WebSocket messages (permessage-deflate, RFC 7692), as the
// configuration says (docs/CONFIG.md "Compression"); read by config/compression_keys.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

namespace wsbridge {

enum class CompressionMode : std::uint8_t {
  kOff,            // no extension negotiated
  kShared,         // ours: each message deflated once for every session (shared_deflate.hpp)
  kPerConnection,  // "per_connection": was libwebsockets' own extension; now served as kShared
};

struct CompressionConfig {
  CompressionMode mode = CompressionMode::kShared;
  // Messages shorter than this go uncompressed: a deflate header costs more than it saves.
  std::size_t threshold = 128;
  int window_bits = 15;  // server_max_window_bits we compress with (9..15)
  int level = 1;         // zlib level (1..9): 1 is about 3x faster than 6 for ~10% more bytes
};

// The modes as the configuration spells them (the config reader's choices, and the log's names).
inline constexpr std::pair<std::string_view, CompressionMode> kCompressionModes[] = {
    {"off", CompressionMode::kOff},
    {"shared", CompressionMode::kShared},
    {"per_connection", CompressionMode::kPerConnection}};

inline std::string_view compression_name(CompressionMode mode) {
  for (const auto& [name, value] : kCompressionModes) {
    if (value == mode) return name;
  }
  return "?";
}

// A route's own keys, each overriding its listener's.
struct CompressionOverrides {
  std::optional<CompressionMode> mode;
  std::optional<std::size_t> threshold;
  std::optional<int> window_bits;
  std::optional<int> level;

  CompressionConfig over(CompressionConfig base) const {
    if (mode) base.mode = *mode;
    if (threshold) base.threshold = *threshold;
    if (window_bits) base.window_bits = *window_bits;
    if (level) base.level = *level;
    return base;
  }
};

}  // namespace wsbridge
