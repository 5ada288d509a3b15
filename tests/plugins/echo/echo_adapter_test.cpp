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
    return SendResult::kQueued;
  }
  void close(CloseCode, std::string_view) override {}
  bool is_open() const override { return true; }
  void pause_reading(bool) override {}
  std::vector<Frame> sent;

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

}  // namespace
}  // namespace wsbridge
