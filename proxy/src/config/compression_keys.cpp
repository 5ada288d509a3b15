#include "config/compression_keys.hpp"

namespace wsbridge {

CompressionOverrides read_compression_keys(ConfigTable& t, bool legacy) {
  CompressionOverrides o;
  o.mode = t.one_of("compression", kCompressionModes);
  if (legacy) {
    if (const auto old = t.boolean("permessage_deflate")) {
      if (o.mode) {
        t.fail_at("permessage_deflate",
                  "'permessage_deflate' in " + t.name() +
                      " is the old name of 'compression': give only 'compression'");
      }
      o.mode = *old ? CompressionMode::kShared : CompressionMode::kOff;
    }
  }
  if (auto v = t.byte_size("compression_threshold", 0, 1ull << 30)) o.threshold = *v;
  if (auto v = t.integer("compression_window_bits", 9, 15)) o.window_bits = static_cast<int>(*v);
  if (auto v = t.integer("compression_level", 1, 9)) o.level = static_cast<int>(*v);
  return o;
}

}  // namespace wsbridge
