// The reverse proxy's backend pool (proxy/src/reverse_proxy/backend_pool.cpp) over fake
// streams: reuse of idle connections (warmest first), the cap on open connections, waiters
// woken in order when room frees, idle connections that hear anything dropped.
#include "reverse_proxy/backend_pool.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace wsbridge::reverse_proxy {
namespace {

struct FakeStream final : Stream {
  explicit FakeStream(StreamHandler& h, int& open) : handler(h), open_count(open) { ++open_count; }
  ~FakeStream() override { --open_count; }
  bool write(std::string_view bytes) override {
    written.append(bytes);
    return true;
  }
  std::size_t buffered() const override { return 0; }
  void pause_reading(bool) override {}
  void set_timer(std::chrono::milliseconds delay) override { timer = delay; }
  void close() override {}
  StreamHandler& handler;
  int& open_count;
  std::string written;
  std::chrono::milliseconds timer{0};
};

struct FakeEndpoint final : StreamEndpoint {
  std::unique_ptr<Stream> connect(StreamHandler& handler) override {
    auto stream = std::make_unique<FakeStream>(handler, open);
    streams.push_back(stream.get());
    return stream;
  }
  const std::string& url() const override { return url_; }
  int open = 0;
  std::vector<FakeStream*> streams;
  std::string url_ = "tcp://fake:1";
};

struct User final : BackendUser {
  void backend_connected() override { ++connected; }
  void backend_data(std::string_view bytes) override { data.append(bytes); }
  void backend_drained() override {}
  void backend_closed(std::string_view) override { ++closed; }
  int connected = 0;
  int closed = 0;
  std::string data;
};

struct Waiter final : BackendWaiter {
  void backend_available() override { ++woken; }
  int woken = 0;
};

class BackendPoolTest : public ::testing::Test {
 protected:
  std::shared_ptr<FakeEndpoint> endpoint = std::make_shared<FakeEndpoint>();
  BackendPool pool{endpoint, 2, std::chrono::seconds(30)};
};

TEST_F(BackendPoolTest, NewConnectionsUpToTheCapThenWait) {
  User a, b, c;
  auto first = pool.acquire(a);
  auto second = pool.acquire(b);
  ASSERT_TRUE(first && second);
  EXPECT_FALSE(first->connected());
  EXPECT_FALSE(first->reused());
  EXPECT_EQ(pool.open_count(), 2u);
  EXPECT_EQ(pool.acquire(c), nullptr);  // at the cap
  Waiter w;
  ASSERT_TRUE(pool.wait(w));
  first.reset();  // a connection closes: room for one
  EXPECT_EQ(w.woken, 1);
  EXPECT_EQ(pool.open_count(), 1u);
  EXPECT_EQ(endpoint->open, 1);
}

TEST_F(BackendPoolTest, EventsReachTheUserWhileInUse) {
  User a;
  auto link = pool.acquire(a);
  endpoint->streams[0]->handler.on_connected();
  EXPECT_TRUE(link->connected());
  EXPECT_EQ(a.connected, 1);
  endpoint->streams[0]->handler.on_data("HTTP/1.1 200 OK\r\n");
  EXPECT_EQ(a.data, "HTTP/1.1 200 OK\r\n");
}

TEST_F(BackendPoolTest, AConnectionGivenBackIsReusedWarmestFirst) {
  User a, b, c;
  auto one = pool.acquire(a);
  auto two = pool.acquire(b);
  FakeStream* first_stream = endpoint->streams[0];
  FakeStream* second_stream = endpoint->streams[1];
  first_stream->handler.on_connected();
  second_stream->handler.on_connected();
  pool.give_back(std::move(one));
  pool.give_back(std::move(two));
  EXPECT_EQ(pool.idle_count(), 2u);
  EXPECT_EQ(second_stream->timer, std::chrono::seconds(30));  // the keep-alive expiry is armed
  auto again = pool.acquire(c);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->reused());
  EXPECT_TRUE(again->connected());
  EXPECT_EQ(&again->stream(), second_stream);  // the one used last
  EXPECT_EQ(second_stream->timer, std::chrono::milliseconds(0));
  EXPECT_EQ(endpoint->streams.size(), 2u);  // nothing new was opened
  second_stream->handler.on_data("x");
  EXPECT_EQ(c.data, "x");
}

TEST_F(BackendPoolTest, IdleConnectionsThatHearAnythingAreDropped) {
  User a, b;
  auto one = pool.acquire(a);
  auto two = pool.acquire(b);
  FakeStream* s1 = endpoint->streams[0];
  FakeStream* s2 = endpoint->streams[1];
  pool.give_back(std::move(one));
  pool.give_back(std::move(two));
  s1->handler.on_closed("the backend closed it");  // (s1 is destroyed with its link)
  EXPECT_EQ(pool.idle_count(), 1u);
  s2->handler.on_data("unasked");
  EXPECT_EQ(pool.idle_count(), 0u);
  EXPECT_EQ(pool.open_count(), 0u);
  EXPECT_EQ(endpoint->open, 0);
  EXPECT_EQ(a.closed + b.closed, 0);  // their users had let go
}

TEST_F(BackendPoolTest, AnExpiredIdleConnectionCloses) {
  User a;
  auto one = pool.acquire(a);
  FakeStream* s = endpoint->streams[0];
  pool.give_back(std::move(one));
  s->handler.on_timer();
  EXPECT_EQ(pool.idle_count(), 0u);
  EXPECT_EQ(endpoint->open, 0);
}

TEST_F(BackendPoolTest, AGivenBackConnectionGoesToTheOldestWaiter) {
  User a, b, c;
  auto one = pool.acquire(a);
  auto two = pool.acquire(b);
  Waiter first, second;
  ASSERT_TRUE(pool.wait(first));
  ASSERT_TRUE(pool.wait(second));
  pool.give_back(std::move(one));
  EXPECT_EQ(first.woken, 1);
  EXPECT_EQ(second.woken, 0);
  pool.cancel_wait(second);
  two.reset();
  EXPECT_EQ(second.woken, 0);  // cancelled
}

TEST_F(BackendPoolTest, TheWaitIsBounded) {
  User a, b;
  auto one = pool.acquire(a);
  auto two = pool.acquire(b);
  std::vector<Waiter> waiters(kMaxWaitingRequests + 1);
  for (std::size_t i = 0; i < kMaxWaitingRequests; ++i) EXPECT_TRUE(pool.wait(waiters[i]));
  EXPECT_FALSE(pool.wait(waiters.back()));
  for (auto& w : waiters) pool.cancel_wait(w);
}

TEST_F(BackendPoolTest, ARelayedWebSocketLeavesTheCount) {
  User a, b, c;
  auto tunnel = pool.acquire(a);
  auto other = pool.acquire(b);
  Waiter w;
  ASSERT_TRUE(pool.wait(w));
  pool.let_go(*tunnel);  // it became a WebSocket: room for a request at once
  EXPECT_EQ(w.woken, 1);
  EXPECT_EQ(pool.open_count(), 1u);
  auto next = pool.acquire(c);
  EXPECT_TRUE(next);
  tunnel.reset();  // its end does not count twice
  EXPECT_EQ(pool.open_count(), 2u);
  EXPECT_EQ(endpoint->open, 2);
}

TEST(BackendPoolKeepAlive, WithoutKeepAliveNothingIsKept) {
  auto endpoint = std::make_shared<FakeEndpoint>();
  BackendPool pool(endpoint, 4, std::chrono::milliseconds(0));
  User a;
  auto one = pool.acquire(a);
  pool.give_back(std::move(one));
  EXPECT_EQ(pool.idle_count(), 0u);
  EXPECT_EQ(endpoint->open, 0);
}

}  // namespace
}  // namespace wsbridge::reverse_proxy
