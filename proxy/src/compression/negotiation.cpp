#include "compression/negotiation.hpp"

#include "compression/deflate_offer.hpp"

namespace wsbridge {

NegotiatedCompression negotiate_compression(std::string_view extensions,
                                            const CompressionConfig& config) {
  NegotiatedCompression n;
  if (extensions.empty()) return n;
  switch (config.mode) {
    case CompressionMode::kOff:
      return n;
    case CompressionMode::kPerConnection:
      // Served as "shared". This mode was lws 4.1.6's own permessage-deflate, whose inflater
      // aborts the whole process on ordinary compressed messages (an assert when a match is still
      // being copied as its 1 KiB buffer fills: a 2.5 KB text from Chromium, Node's ws or python
      // websockets was enough), whose deflater did the same on an empty message after another,
      // and which corrupted long inflations over TLS: nothing wsbridge could guard from outside.
    case CompressionMode::kShared:
      break;
  }
  const auto agreed = deflate_offer::negotiate(extensions, config.window_bits);
  if (!agreed) return n;
  n.mode = CompressionMode::kShared;
  n.format = shared_deflate::format_for(agreed->server_window_bits, config.level, config.threshold);
  n.response = agreed->response;
  return n;
}

}  // namespace wsbridge
