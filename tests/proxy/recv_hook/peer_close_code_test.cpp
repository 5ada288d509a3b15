// The client's close code as the guard reads it (FrameMaskScanner::peer_close_code), which the
// server puts back where lws 4.1.6 wrote 1002 over a registered code (1012-1014).
#include <gtest/gtest.h>

#include "recv_hook/frame_mask_scanner.hpp"
#include "support/ws_test_client.hpp"

namespace wsbridge {
namespace {

using testing::encode_frame;
using testing::Opcode;

std::string close_frame(std::uint16_t code) {
  const std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xff), 'x'};
  return encode_frame(Opcode::kClose, payload, true, testing::random_mask_key());
}

TEST(PeerCloseCodeTest, TheFirstValidCloseCodeIsKeptAtEverySplit) {
  for (const std::uint16_t code : {1000, 1012, 1013, 1014, 4000}) {
    const std::string stream = encode_frame(Opcode::kText, "hi", true, testing::random_mask_key()) +
                               close_frame(code) + close_frame(1001);
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
      FrameMaskScanner s;
      EXPECT_EQ(s.peer_close_code(), 0);
      std::string a = stream.substr(0, cut);
      std::string b = stream.substr(cut);
      s.feed(reinterpret_cast<unsigned char*>(a.data()), a.size());
      s.feed(reinterpret_cast<unsigned char*>(b.data()), b.size());
      EXPECT_EQ(s.peer_close_code(), code) << "cut at " << cut;
    }
  }
  // A code no endpoint may send is a violation, not a close code to give back.
  FrameMaskScanner s;
  std::string invalid = close_frame(1015);
  s.feed(reinterpret_cast<unsigned char*>(invalid.data()), invalid.size());
  EXPECT_TRUE(s.violated());
  EXPECT_EQ(s.peer_close_code(), 0);
}

}  // namespace
}  // namespace wsbridge
