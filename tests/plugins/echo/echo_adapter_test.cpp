// The echo adapter (plugins/echo/echo_adapter.cpp) on a connection that records what it sends.
#include <gtest/gtest.h>

#include "echo_adapter.hpp"

namespace wsbridge {
namespace {

// A Connection that records what the adapter sends.
class RecordingConnection : public Connection {
 public:
  ConnectionId id() const override { return 7; }
  const Identity& identity() const override { return identity_; }
  SendResult send(Frame frame) override {
    sent.push_back(std::move(frame));
    return next_result;
  }
  void close(CloseCode, std::string_view) override {}
  bool is_open() const override { return true; }
  void pause_reading(bool paused) override { pauses.push_back(paused); }
  std::vector<Frame> sent;
  SendResult next_result = SendResult::kQueued;  // what send() answers
  std::vector<bool> pauses;                      // pause_reading calls, in order

 private:
  Identity identity_;
};
TEST(EchoAdapterTest, EchoesWithPrefixAndSameType) {
  echo::EchoAdapter adapter(echo::EchoConfig{"Echo: "});
  auto conn = std::make_shared<RecordingConnection>();
  adapter.on_message(conn, Frame::text("Hello Server!"));
  adapter.on_message(conn, Frame::binary(std::string_view("\x00\xff", 2)));
  ASSERT_EQ(conn->sent.size(), 2u);
  EXPECT_EQ(conn->sent[0].payload(), "Echo: Hello Server!");
  EXPECT_TRUE(conn->sent[0].is_text());
  EXPECT_EQ(conn->sent[1].payload(), std::string_view("Echo: \x00\xff", 8));
  EXPECT_TRUE(conn->sent[1].is_binary());
}

TEST(EchoAdapterTest, WithoutPrefixSendsTheSameBuffer) {
  echo::EchoAdapter adapter(echo::EchoConfig{});
  auto conn = std::make_shared<RecordingConnection>();
  Frame in = Frame::text("zero copy");
  adapter.on_message(conn, in);
  ASSERT_EQ(conn->sent.size(), 1u);
  EXPECT_EQ(conn->sent[0].payload().data(), in.payload().data());
}

// A client that does not read its echoes is not read from until they drained: its queue stops
// near the high-water mark instead of growing to max_queued_bytes at the speed it sends.
TEST(EchoAdapterTest, PausesTheClientWhileItsEchoesAreOverTheHighWaterMark) {
  for (const std::string prefix : {"", "Echo: "}) {
    echo::EchoAdapter adapter(echo::EchoConfig{prefix});
    auto conn = std::make_shared<RecordingConnection>();
    adapter.on_message(conn, Frame::text("below the mark"));
    EXPECT_TRUE(conn->pauses.empty()) << prefix;
    conn->next_result = SendResult::kQueuedOverHighWater;
    adapter.on_message(conn, Frame::text("past it"));
    EXPECT_EQ(conn->pauses, std::vector<bool>{true}) << prefix;
    adapter.on_drained(conn);
    EXPECT_EQ(conn->pauses, (std::vector<bool>{true, false})) << prefix;
    ASSERT_EQ(conn->sent.size(), 2u) << "nothing is held back from the queue";
    EXPECT_EQ(conn->sent[1].payload(), prefix + "past it");
  }
}

}  // namespace
}  // namespace wsbridge
