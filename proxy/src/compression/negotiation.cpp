#include "compression/negotiation.hpp"

#include "compression/deflate_offer.hpp"

namespace wsbridge {

namespace {

// How many offers of permessage-deflate the list makes.
std::size_t deflate_offers(std::string_view extensions) {
  std::size_t n = 0;
  for (auto at = extensions.find("permessage-deflate"); at != std::string_view::npos;
       at = extensions.find("permessage-deflate", at + 1)) {
    ++n;
  }
  return n;
}

}  // namespace

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
      // It also drops the connection without an answer when the list offers permessage-deflate
      // twice ("ext mentioned twice"), and takes parameters RFC 7692 5 says to decline (unknown,
      // repeated or invalid ones): lws gets one offer that the shared mode's reading accepts.
      if (extensions.find("server_no_context_takeover") != std::string_view::npos ||
          extensions.find("server_max_window_bits") != std::string_view::npos ||
          deflate_offers(extensions) != 1 || !deflate_offer::negotiate(extensions, 15)) {
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
