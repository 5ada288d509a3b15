// What one WebSocket upgrade gets of the route's compression (compression_config.hpp): decided
// with the other upgrade checks (Shard::confirm_upgrade), carried to the session.
#pragma once

#include <string>
#include <string_view>

#include "compression/compression_config.hpp"
#include "compression/shared_deflate.hpp"

namespace wsbridge {

struct NegotiatedCompression {
  // kShared: ours was agreed; kOff: none (never kPerConnection: that mode is served as kShared).
  CompressionMode mode = CompressionMode::kOff;
  shared_deflate::WireFormat format;  // kShared: how its frames are sent
  std::string response;               // kShared: the Sec-WebSocket-Extensions value to answer
};

// `extensions`: the request's Sec-WebSocket-Extensions (empty when absent).
NegotiatedCompression negotiate_compression(std::string_view extensions,
                                            const CompressionConfig& config);

}  // namespace wsbridge
