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
      n.mode = CompressionMode::kPerConnection;
      return n;
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
