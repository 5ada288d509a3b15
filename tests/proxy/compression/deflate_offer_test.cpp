// permessage-deflate negotiation (RFC 7692 7.1) of the shared mode: what is accepted, what is
// declined, and the exact response.
#include "compression/deflate_offer.hpp"

#include <gtest/gtest.h>

#include "compression/negotiation.hpp"

namespace wsbridge {
namespace {

constexpr const char* kBase =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

std::string response_to(std::string_view offer, int window_bits = 15) {
  auto a = deflate_offer::negotiate(offer, window_bits);
  return a ? a->response : "(declined)";
}

TEST(DeflateOfferTest, BrowsersOfferIsAnsweredWithBothNoContextTakeovers) {
  // Chromium and Firefox send this; python3-websockets and Node's ws too.
  EXPECT_EQ(response_to("permessage-deflate; client_max_window_bits"), kBase);
  EXPECT_EQ(response_to("permessage-deflate"), kBase);
  EXPECT_EQ(response_to("permessage-deflate;client_max_window_bits=10"), kBase);
  EXPECT_EQ(response_to("permessage-deflate; server_no_context_takeover"), kBase);
  EXPECT_EQ(response_to("permessage-deflate; client_no_context_takeover"), kBase);
}

TEST(DeflateOfferTest, ServerMaxWindowBitsIsAlwaysAnsweredWhenOffered) {
  auto a = deflate_offer::negotiate("permessage-deflate; server_max_window_bits=10", 15);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->server_window_bits, 10);
  EXPECT_EQ(a->response, std::string(kBase) + "; server_max_window_bits=10");
  // Quoted values are allowed (RFC 6455 9.1), and our own smaller window wins.
  a = deflate_offer::negotiate("permessage-deflate; server_max_window_bits=\"12\"", 11);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->server_window_bits, 11);
  EXPECT_EQ(a->response, std::string(kBase) + "; server_max_window_bits=11");
  // 8 is a valid offer; zlib cannot write it, and its 9-bit output reaches back at most 250
  // bytes: such a session shares the 9-bit variant.
  a = deflate_offer::negotiate("permessage-deflate; server_max_window_bits=8", 15);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->server_window_bits, 8);
  EXPECT_EQ(shared_deflate::format_for(a->server_window_bits, 1, 0).key,
            shared_deflate::format_for(9, 1, 0).key);
}

TEST(DeflateOfferTest, OurSmallerWindowIsAnnouncedUnasked) {
  EXPECT_EQ(response_to("permessage-deflate", 10),
            std::string(kBase) + "; server_max_window_bits=10");
}

TEST(DeflateOfferTest, InvalidOffersAreDeclinedAndTheNextOneIsTried) {
  for (const char* bad : {
           "permessage-deflate; server_max_window_bits",        // value required
           "permessage-deflate; server_max_window_bits=16",     // out of range
           "permessage-deflate; server_max_window_bits=7",      //
           "permessage-deflate; server_max_window_bits=010",    // leading zero
           "permessage-deflate; client_max_window_bits=20",     //
           "permessage-deflate; server_no_context_takeover=1",  // takes no value
           "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
           "permessage-deflate; x_unknown",  // unknown parameter
           "x-webkit-deflate-frame",         // another extension
           "",
       }) {
    EXPECT_EQ(response_to(bad), "(declined)") << bad;
  }
  // The first acceptable offer of several wins.
  EXPECT_EQ(response_to("permessage-deflate; bogus, permessage-deflate; server_max_window_bits=9"),
            std::string(kBase) + "; server_max_window_bits=9");
  EXPECT_EQ(response_to("foo, permessage-deflate"), kBase);
}

TEST(DeflateOfferTest, ModesDecideWhoNegotiates) {
  CompressionConfig config;
  config.level = 3;
  config.threshold = 64;
  NegotiatedCompression n = negotiate_compression("permessage-deflate", config);
  EXPECT_EQ(n.mode, CompressionMode::kShared);
  EXPECT_TRUE(n.format.compresses());
  EXPECT_EQ(n.format.threshold, 64u);
  EXPECT_EQ(n.response, kBase);
  EXPECT_EQ(negotiate_compression("", config).mode, CompressionMode::kOff);
  EXPECT_EQ(negotiate_compression("permessage-deflate; nope", config).mode, CompressionMode::kOff);
  config.mode = CompressionMode::kOff;
  EXPECT_EQ(negotiate_compression("permessage-deflate", config).mode, CompressionMode::kOff);
  // "per_connection" (lws 4.1.6's own deflate, which aborted the process) is served as "shared":
  // every offer gets exactly the shared mode's answer.
  for (const char* offer :
       {"permessage-deflate; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10", "permessage-deflate, permessage-deflate",
        "permessage-deflate; foo=1", "x-webkit-deflate-frame, permessage-deflate"}) {
    CompressionConfig shared = config;
    shared.mode = CompressionMode::kShared;
    config.mode = CompressionMode::kPerConnection;
    const NegotiatedCompression per_connection = negotiate_compression(offer, config);
    const NegotiatedCompression expected = negotiate_compression(offer, shared);
    EXPECT_EQ(per_connection.mode, expected.mode) << offer;
    EXPECT_EQ(per_connection.response, expected.response) << offer;
    EXPECT_NE(per_connection.mode, CompressionMode::kPerConnection) << offer;
  }
}

}  // namespace
}  // namespace wsbridge
