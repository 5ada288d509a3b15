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
      // lws 4.1.6 mishandles two parameters (tests/integration/compression_foreign_test.cpp):
      // with server_no_context_takeover it resets its inflater instead of its deflater (the
      // client's second message fails to inflate), and it leaves server_max_window_bits out of
      // its answer (RFC 7692 7.1.2.1; clients then fail the handshake). Such offers are declined.
      if (extensions.find("server_no_context_takeover") != std::string_view::npos ||
          extensions.find("server_max_window_bits") != std::string_view::npos) {
        return n;
      }
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
