// The compression keys of [[listeners]] and [[routes]] (docs/CONFIG.md "Compression").
#pragma once

#include "compression/compression_config.hpp"
#include "wsbridge/config_table.hpp"

namespace wsbridge {

// compression, compression_threshold, compression_window_bits, compression_level: the ones given.
// `legacy`: also the listener key of earlier releases, permessage_deflate = true | false (the
// shared mode, or off), refused beside `compression`.
CompressionOverrides read_compression_keys(ConfigTable& t, bool legacy);

}  // namespace wsbridge
