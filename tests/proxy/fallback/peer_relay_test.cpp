// A fallback request relayed to the instance that owns its session
// (proxy/src/fallback/peer_relay.cpp), against a scripted stream: how long the owner has.
#include "fallback/peer_relay.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace wsbridge::fallback {
namespace {

using namespace std::chrono_literals;

// Records what the relay asks of its stream; the test plays the owner through the handler.
class ScriptedStream final : public Stream {
 public:
  bool write(std::string_view bytes) override {
    written += bytes;
    return true;
  }
  std::size_t buffered() const override { return 0; }
  void pause_reading(bool pause) override { paused = pause; }
  void set_timer(std::chrono::milliseconds delay) override { timers.push_back(delay); }
  void close() override { closed = true; }

  std::string written;
  std::vector<std::chrono::milliseconds> timers;
  bool paused = false;
  bool closed = false;
};

class ScriptedEndpoint final : public StreamEndpoint {
 public:
  std::unique_ptr<Stream> connect(StreamHandler& h) override {
    handler = &h;
    auto s = std::make_unique<ScriptedStream>();
    stream = s.get();
    return s;
  }
  const std::string& url() const override { return url_; }

  StreamHandler* handler = nullptr;
  ScriptedStream* stream = nullptr;

 private:
  std::string url_ = "tcp://127.0.0.1:1";
};

TEST(PeerRelayTest, AWholeAnswerTrickledInIsCutAtTheLimitFromTheStart) {
  auto channel = std::make_shared<ResponseChannel>(ResponseKind::kWhole, 1 << 20);
  PeerRelay relay(channel, "GET /_wsbridge/poll/echo HTTP/1.1\r\n\r\n", 9s);
  ScriptedEndpoint owner;
  relay.start(owner);
  ASSERT_EQ(owner.stream->timers, std::vector<std::chrono::milliseconds>{9s});
  owner.handler->on_connected();
  EXPECT_EQ(owner.stream->written, "GET /_wsbridge/poll/echo HTTP/1.1\r\n\r\n");
  // A byte at a time: none of them moves the deadline (they did, so it never came).
  for (const char c : std::string("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc")) {
    owner.handler->on_data(std::string_view(&c, 1));
  }
  relay.on_channel_news();  // (the carrier's wake-ups do not move it either)
  EXPECT_EQ(owner.stream->timers.size(), 1u);
  owner.handler->on_timer();
  EXPECT_TRUE(relay.done());
  EXPECT_TRUE(owner.stream->closed);
  const auto taken = channel->take(1 << 20);
  EXPECT_EQ(taken.status, 504u);
  EXPECT_NE(taken.body().find("did not answer within 9 s"), std::string_view::npos) << taken.body();
}

TEST(PeerRelayTest, AStreamLivesWhileItsOwnerWrites) {
  auto channel = std::make_shared<ResponseChannel>(ResponseKind::kStream, 1 << 20);
  PeerRelay relay(channel, "GET /_wsbridge/sse/echo HTTP/1.1\r\n\r\n", 9s);
  ScriptedEndpoint owner;
  relay.start(owner);
  owner.handler->on_connected();
  owner.handler->on_data("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
  owner.handler->on_data(": heartbeat\n\n");
  owner.handler->on_data(": heartbeat\n\n");
  // Each of a stream's writes gives it the limit again; silent for the limit, it ends.
  EXPECT_EQ(owner.stream->timers.size(), 3u);
  EXPECT_FALSE(relay.done());
  owner.handler->on_timer();
  EXPECT_TRUE(relay.done());
  EXPECT_TRUE(channel->take(1 << 20).ended);
}

}  // namespace
}  // namespace wsbridge::fallback
