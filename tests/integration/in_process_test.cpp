// The server in this process, with test adapters that call Connection::send and close from
// their own threads: the cross-thread hand-off is exercised here, and under ThreadSanitizer
// (label "threads").
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "support/eventually.hpp"
#include "support/in_process_server.hpp"
#include "support/ws_test_client.hpp"
#include "wsbridge/adapter_registry.hpp"
#include "wsbridge/fan_out.hpp"

namespace wsbridge {
namespace {

using namespace std::chrono_literals;
using testing::Opcode;
using testing::WsClient;

// Every connection gets `count` text frames from a thread of the adapter's, then a close.
class TickerAdapter final : public Adapter {
 public:
  explicit TickerAdapter(int count) : count_(count) {}
  ~TickerAdapter() override {
    std::lock_guard lock(mutex_);
    for (auto& t : threads_) t.join();
  }
  void on_open(const std::shared_ptr<Connection>& connection) override {
    std::lock_guard lock(mutex_);
    threads_.emplace_back([connection, count = count_] {
      for (int i = 0; i < count; ++i) connection->send(Frame::text("tick " + std::to_string(i)));
      connection->close(CloseCode::kNormal, "ticks done");
    });
  }
  void on_message(const std::shared_ptr<Connection>&, Frame) override {}

 private:
  const int count_;
  std::mutex mutex_;
  std::vector<std::thread> threads_;
};

// Remembers its connections so the test can reach them from its own thread.
class CollectingAdapter final : public Adapter {
 public:
  void on_open(const std::shared_ptr<Connection>& connection) override {
    std::lock_guard lock(mutex_);
    connections_.push_back(connection);
    opened_.notify_all();
  }
  void on_message(const std::shared_ptr<Connection>&, Frame) override {}
  void on_close(const std::shared_ptr<Connection>&, const CloseInfo& info) override {
    std::lock_guard lock(mutex_);
    closes_.push_back(info);
  }
  std::vector<std::shared_ptr<Connection>> wait_for(std::size_t n) {
    std::unique_lock lock(mutex_);
    opened_.wait_for(lock, 5s, [&] { return connections_.size() >= n; });
    return connections_;
  }
  std::vector<CloseInfo> closes() {
    std::lock_guard lock(mutex_);
    return closes_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable opened_;
  std::vector<std::shared_ptr<Connection>> connections_;
  std::vector<CloseInfo> closes_;
};

using testing::ForwardingKind;
using testing::InProcessServer;

TEST(InProcessTest, SendsAndClosesFromForeignThreadsArriveInOrder) {
  AdapterRegistry registry;
  auto ticker = std::make_shared<TickerAdapter>(500);
  registry.add("ticker", [ticker] { return std::make_unique<ForwardingKind>(ticker); });
  InProcessServer server("[[routes]]\npath = \"/tick\"\nadapter = \"ticker\"\n", registry);

  std::vector<WsClient> clients;
  for (int c = 0; c < 8; ++c) clients.push_back(WsClient::connect(server.client("/tick")));
  for (auto& ws : clients) {
    for (int i = 0; i < 500; ++i) {
      auto m = ws.read_message();
      ASSERT_EQ(m.opcode, Opcode::kText);
      ASSERT_EQ(m.data, "tick " + std::to_string(i));
    }
    auto close = ws.read_message();
    EXPECT_EQ(close.opcode, Opcode::kClose);
    EXPECT_EQ(close.close_code(), 1000);
    EXPECT_EQ(close.close_reason(), "ticks done");
  }
}

TEST(InProcessTest, OneSharedFrameFansOutToEveryConnectionFromAnotherThread) {
  AdapterRegistry registry;
  auto collector = std::make_shared<CollectingAdapter>();
  registry.add("collect", [collector] { return std::make_unique<ForwardingKind>(collector); });
  InProcessServer server("[[routes]]\npath = \"/fan\"\nadapter = \"collect\"\n", registry);

  std::vector<WsClient> clients;
  for (int c = 0; c < 20; ++c) clients.push_back(WsClient::connect(server.client("/fan")));
  auto connections = collector->wait_for(20);
  ASSERT_EQ(connections.size(), 20u);

  std::thread producer([&] {
    for (int i = 0; i < 100; ++i) {
      const Frame frame = Frame::binary("broadcast " + std::to_string(i));
      for (auto& c : connections) EXPECT_EQ(c->send(frame), SendResult::kQueued);
    }
  });
  producer.join();
  for (auto& ws : clients) {
    for (int i = 0; i < 100; ++i) {
      auto m = ws.read_message();
      ASSERT_EQ(m.opcode, Opcode::kBinary);
      ASSERT_EQ(m.data, "broadcast " + std::to_string(i));
    }
  }
}

TEST(InProcessTest, HandlesOutliveTheirConnectionsAndTheServer) {
  AdapterRegistry registry;
  auto collector = std::make_shared<CollectingAdapter>();
  registry.add("collect", [collector] { return std::make_unique<ForwardingKind>(collector); });
  auto server = std::make_unique<InProcessServer>(
      "[[routes]]\npath = \"/c\"\nadapter = \"collect\"\n", registry);
  {
    WsClient ws = WsClient::connect(server->client("/c"));
    ASSERT_EQ(collector->wait_for(1).size(), 1u);
    ws.send_close(4000, "client leaves");
    EXPECT_EQ(ws.wait_close(), 4000);
  }
  auto handle = collector->wait_for(1)[0];
  // on_close follows the handle's switch to closed: wait for both.
  testing::eventually([&] { return !handle->is_open() && !collector->closes().empty(); }, 5s, 5ms);
  EXPECT_FALSE(handle->is_open());
  ASSERT_EQ(collector->closes().size(), 1u);
  EXPECT_EQ(collector->closes()[0].code, 4000);
  EXPECT_EQ(collector->closes()[0].reason, "client leaves");
  EXPECT_TRUE(collector->closes()[0].by_peer);
  // A stale handle is a no-op from any thread, before and after the server is gone.
  std::thread([&] { EXPECT_EQ(handle->send(Frame::text("late")), SendResult::kClosed); }).join();
  handle->close(CloseCode::kNormal, "late");
  server.reset();
  EXPECT_EQ(handle->send(Frame::text("later")), SendResult::kClosed);
  EXPECT_EQ(handle->identity().route_path, "/c");
}

TEST(InProcessTest, CloseFromAnotherThreadUsesTheGivenCodeAfterQueuedFrames) {
  AdapterRegistry registry;
  auto collector = std::make_shared<CollectingAdapter>();
  registry.add("collect", [collector] { return std::make_unique<ForwardingKind>(collector); });
  InProcessServer server("[[routes]]\npath = \"/c\"\nadapter = \"collect\"\n", registry);
  WsClient ws = WsClient::connect(server.client("/c"));
  auto handle = collector->wait_for(1)[0];
  std::thread([&] {
    handle->send(Frame::text("last words"));
    handle->close(CloseCode::kPolicyViolation, std::string(200, 'r'));  // reason is cut to 123
  }).join();
  EXPECT_EQ(ws.read_message().data, "last words");
  auto close = ws.read_message();
  EXPECT_EQ(close.close_code(), 1008);
  EXPECT_EQ(close.close_reason(), std::string(123, 'r'));
}

// Connections until both shards have some: ids name their shard (id % threads).
std::vector<WsClient> connect_on_both_shards(const InProcessServer& server, const std::string& path,
                                             CollectingAdapter& collector, std::size_t per_shard) {
  std::vector<WsClient> clients;
  for (int attempt = 0; attempt < 200; ++attempt) {
    clients.push_back(WsClient::connect(server.client(path)));
    auto connections = collector.wait_for(clients.size());
    std::size_t even = 0;
    for (const auto& c : connections) even += c->id() % 2 == 0 ? 1 : 0;
    if (even >= per_shard && connections.size() - even >= per_shard) break;
  }
  return clients;
}

TEST(InProcessTest, FanOutHandsOneFramePerShardToSubscribersOnBoth) {
  AdapterRegistry registry;
  auto collector = std::make_shared<CollectingAdapter>();
  registry.add("collect", [collector] { return std::make_unique<ForwardingKind>(collector); });
  InProcessServer server("[[routes]]\npath = \"/fan\"\nadapter = \"collect\"\n", registry, 2);
  std::vector<WsClient> clients = connect_on_both_shards(server, "/fan", *collector, 4);
  auto connections = collector->wait_for(clients.size());
  ASSERT_EQ(connections.size(), clients.size());
  std::set<ConnectionId> shards;
  for (const auto& c : connections) shards.insert(c->id() % 2);
  ASSERT_EQ(shards.size(), 2u);

  // From a thread of the adapter's, interleaved with single sends: order per connection holds.
  std::thread producer([&] {
    for (int i = 0; i < 200; ++i) {
      EXPECT_EQ(send_to_all(connections, Frame::text("all " + std::to_string(i))).handed,
                connections.size());
      if (i % 50 == 0) connections.front()->send(Frame::text("one " + std::to_string(i)));
    }
  });
  producer.join();
  for (std::size_t c = 0; c < clients.size(); ++c) {
    for (int i = 0; i < 200; ++i) {
      ASSERT_EQ(clients[c].read_message().data, "all " + std::to_string(i));
      if (c == 0 && i % 50 == 0) {
        ASSERT_EQ(clients[c].read_message().data, "one " + std::to_string(i));
      }
    }
  }
}

TEST(InProcessTest, SendFromAnAdapterThreadToAClosedConnectionOnAnotherShard) {
  AdapterRegistry registry;
  auto collector = std::make_shared<CollectingAdapter>();
  registry.add("collect", [collector] { return std::make_unique<ForwardingKind>(collector); });
  InProcessServer server("[[routes]]\npath = \"/c\"\nadapter = \"collect\"\n", registry, 2);
  std::vector<WsClient> clients = connect_on_both_shards(server, "/c", *collector, 1);
  auto connections = collector->wait_for(clients.size());
  // Close one connection of each shard from the client's side.
  std::vector<std::size_t> closed;
  for (ConnectionId shard : {0u, 1u}) {
    for (std::size_t i = 0; i < connections.size(); ++i) {
      if (connections[i]->id() % 2 == shard) {
        closed.push_back(i);
        clients[i].send_close(4000, "bye");
        EXPECT_EQ(clients[i].wait_close(), 4000);
        break;
      }
    }
  }
  ASSERT_EQ(closed.size(), 2u);
  testing::eventually([&] { return collector->closes().size() >= 2; }, 5s, 5ms);
  ASSERT_EQ(collector->closes().size(), 2u);
  // A thread of the adapter's sends to both closed ones (kClosed, nothing happens) and, in one
  // fan-out, to everyone: only the open ones are handed the frame, and receive it.
  std::thread sender([&] {
    for (std::size_t i : closed) {
      EXPECT_EQ(connections[i]->send(Frame::text("late")), SendResult::kClosed);
      connections[i]->close(CloseCode::kNormal, "late");
      connections[i]->pause_reading(true);
    }
    EXPECT_EQ(send_to_all(connections, Frame::text("to the living")).handed,
              connections.size() - 2);
  });
  sender.join();
  for (std::size_t i = 0; i < clients.size(); ++i) {
    if (std::find(closed.begin(), closed.end(), i) != closed.end()) continue;
    EXPECT_EQ(clients[i].read_message().data, "to the living");
  }
}

TEST(InProcessTest, ShutdownClosesWith1012AndStopsRun) {
  AdapterRegistry registry;
  auto collector = std::make_shared<CollectingAdapter>();
  registry.add("collect", [collector] { return std::make_unique<ForwardingKind>(collector); });
  InProcessServer server("[[routes]]\npath = \"/c\"\nadapter = \"collect\"\n", registry);
  WsClient ws = WsClient::connect(server.client("/c"));
  collector->wait_for(1);
  std::thread stopper([&] { server.stop(); });
  EXPECT_EQ(ws.wait_close(), 1012);
  stopper.join();
  ASSERT_EQ(collector->closes().size(), 1u);
  EXPECT_EQ(collector->closes()[0].code, 1012);
  EXPECT_FALSE(collector->closes()[0].by_peer);
}

}  // namespace
}  // namespace wsbridge
