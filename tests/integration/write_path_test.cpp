// The server in this process: large frames through the direct write path to a slow reader, and
// what Connection::send answers (SendResult) as a connection's queue fills, from the service
// thread and from another one.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "support/eventually.hpp"
#include "support/in_process_server.hpp"
#include "support/ws_test_client.hpp"
#include "wsbridge/adapter_registry.hpp"

namespace wsbridge {
namespace {

using namespace std::chrono_literals;
using testing::Opcode;
using testing::WsClient;

std::string patterned(std::size_t size, int seed) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((seed * 31 + i) % 251);
  return s;
}

constexpr std::size_t kHugeBytes = 16 * 1024 * 1024;

// Keeps its connections for the test; on "huge" it answers with one frame of kHugeBytes from the
// service thread; on a message "burst", "burst droppable" or "burst thread"
// sends kBurst frames of kBurstBytes to its sender (from the service thread, or from a thread
// joined inside on_message, so the service thread takes none of them over meanwhile) and records
// what each send answered.
class TestAdapter final : public Adapter {
 public:
  static constexpr int kBurst = 12;
  static constexpr std::size_t kBurstBytes = 1000;

  void on_open(const std::shared_ptr<Connection>& connection) override {
    std::lock_guard lock(mutex_);
    connections_.push_back(connection);
    changed_.notify_all();
  }
  void on_message(const std::shared_ptr<Connection>& connection, Frame message) override {
    const std::string_view what = message.payload();
    if (what == "huge") {
      connection->send(Frame::binary(patterned(kHugeBytes, 7)));
      return;
    }
    auto burst = [&, droppable = what == "burst droppable"] {
      std::vector<SendResult> results;
      for (int i = 0; i < kBurst; ++i) {
        std::string payload(kBurstBytes, 'x');
        payload.replace(0, std::to_string(i).size(), std::to_string(i));
        Frame f = Frame::text(payload);
        results.push_back(connection->send(droppable ? f.droppable() : f));
      }
      std::lock_guard lock(mutex_);
      results_ = std::move(results);
      changed_.notify_all();
    };
    if (what == "burst thread") {
      std::thread(burst).join();
    } else {
      burst();
    }
  }
  std::shared_ptr<Connection> wait_for_connection() {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, 5s, [&] { return !connections_.empty(); });
    return connections_.empty() ? nullptr : connections_.back();
  }
  std::vector<SendResult> wait_for_results() {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, 5s, [&] { return !results_.empty(); });
    return results_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::shared_ptr<Connection>> connections_;
  std::vector<SendResult> results_;
};

// One route "/t" on adapter "test" with `route_keys`, served on a thread of this process.
class Served {
 public:
  explicit Served(const std::string& route_keys) {
    registry_.add("test", [a = adapter] { return std::make_unique<testing::ForwardingKind>(a); });
    server_.emplace("[[routes]]\npath = \"/t\"\nadapter = \"test\"\n" + route_keys, registry_);
  }
  WsClient connect() const { return WsClient::connect(server_->client("/t")); }
  std::shared_ptr<TestAdapter> adapter = std::make_shared<TestAdapter>();

 private:
  AdapterRegistry registry_;
  std::optional<testing::InProcessServer> server_;
};

// 1 MiB frames go out in many partial writes to a client that reads slowly and pings meanwhile:
// every frame arrives whole and in order, and every ping is answered, never inside a frame.
TEST(WritePathTest, LargeFramesReachASlowReaderWholeWhileItPings) {
  Served served("max_queued_bytes = \"64MiB\"\n");
  WsClient ws = served.connect();
  auto connection = served.adapter->wait_for_connection();
  ASSERT_NE(connection, nullptr);

  std::vector<std::string> sent;
  for (int i = 0; i < 6; ++i) {
    for (std::size_t size : {std::size_t{1024 * 1024}, std::size_t{100}, std::size_t{64 * 1024}}) {
      sent.push_back(patterned(size, static_cast<int>(sent.size())));
      ASSERT_NE(connection->send(Frame::binary(sent.back())), SendResult::kClosed);
    }
  }
  // Nothing read yet: the server's socket is full and a frame is partly written. Pings now, and
  // after every message read, ask lws for a PONG while it is in the middle of a frame.
  std::this_thread::sleep_for(100ms);
  for (int i = 0; i < 5; ++i) ws.send_frame(Opcode::kPing, "p" + std::to_string(i));
  std::this_thread::sleep_for(100ms);
  for (std::size_t i = 0; i < sent.size(); ++i) {
    WsClient::Message m = ws.read_message(10s);
    ASSERT_EQ(m.opcode, Opcode::kBinary) << "message " << i;
    ASSERT_EQ(m.data.size(), sent[i].size()) << "message " << i;
    ASSERT_TRUE(m.data == sent[i]) << "message " << i << " differs";
    ws.send_frame(Opcode::kPing, "after " + std::to_string(i));
  }
  // lws answers each burst of pings it reads with one PONG (RFC 6455 5.5.3 allows that), once
  // the frame in progress is complete; a ping after the data is answered too.
  const int answered = ws.pongs_received();  // (those read so far, passing between messages)
  ws.send_frame(Opcode::kPing, "last");
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (ws.pongs_received() == answered && std::chrono::steady_clock::now() < deadline) {
    connection->send(Frame::text("more"));
    EXPECT_EQ(ws.read_message().data, "more");
  }
  EXPECT_GT(ws.pongs_received(), answered);
}

// A PING and a request read together: lws owes the PONG when the request's answer, a frame far
// larger than the socket takes at once, is queued. The frame is written at the end of the loop
// turn only when lws owes nothing (write_path.cpp, want_write_soon); here it must wait for lws'
// write turn, which sends the PONG first, or the PONG would land inside the frame.
TEST(WritePathTest, APongLwsOwesGoesBeforeALargeAnswerNotInsideIt) {
  Served served("max_queued_bytes = \"64MiB\"\n");
  WsClient ws = served.connect();
  ASSERT_NE(served.adapter->wait_for_connection(), nullptr);
  for (int round = 0; round < 3; ++round) {
    ws.tcp().send_all(
        testing::encode_frame(Opcode::kPing, "p", true, testing::random_mask_key()) +
        testing::encode_frame(Opcode::kText, "huge", true, testing::random_mask_key()));
    std::this_thread::sleep_for(200ms);  // the server fills the socket and keeps the rest
    const int pongs_before = ws.pongs_received();
    WsClient::Message m = ws.read_message(20s);
    ASSERT_EQ(m.opcode, Opcode::kBinary) << "round " << round;
    ASSERT_EQ(m.data.size(), kHugeBytes) << "round " << round;
    ASSERT_TRUE(m.data == patterned(kHugeBytes, 7)) << "round " << round << ": frame corrupted";
    EXPECT_EQ(ws.pongs_received(), pongs_before + 1) << "round " << round;
  }
  // And the direct path is back once lws owes nothing: a plain request is answered as before.
  ws.send_text("huge");
  EXPECT_EQ(ws.read_message(20s).data.size(), kHugeBytes);
}

// drop_oldest trims the queue of a client that stopped reading while a 1 MiB frame is partly
// written: the frame in progress is never among those dropped, so what arrives is whole frames.
TEST(WritePathTest, DropOldestNeverCutsTheFrameInProgress) {
  Served served("max_queued_bytes = \"3MiB\"\nslow_consumer = \"drop_oldest\"\n");
  WsClient ws = served.connect();
  auto connection = served.adapter->wait_for_connection();
  ASSERT_NE(connection, nullptr);
  constexpr int kFrames = 40;
  auto frame_of = [](int i) {
    std::string payload(1024 * 1024, static_cast<char>('a' + i % 26));
    payload.replace(0, 8, std::to_string(10'000'000 + i));
    return payload;
  };
  for (int i = 0; i < kFrames; ++i) {
    connection->send(Frame::binary(frame_of(i)).droppable());
    if (i % 8 == 0) std::this_thread::sleep_for(20ms);  // let the writes fill the socket
  }
  int last = -1;
  int received = 0;
  while (last < kFrames - 1) {
    WsClient::Message m = ws.read_message(10s);
    ASSERT_EQ(m.opcode, Opcode::kBinary);
    const int i = std::stoi(m.data.substr(0, 8)) - 10'000'000;
    ASSERT_GT(i, last) << "out of order";
    ASSERT_TRUE(m.data == frame_of(i)) << "frame " << i << " is not whole";
    last = i;
    ++received;
  }
  EXPECT_LT(received, kFrames);  // some were dropped
}

// From the service thread (an adapter answering inside on_message): 12 frames of 1000 bytes
// into a queue of at most 10,240 bytes with its high-water mark at half.
TEST(SendResultTest, QueuedThenOverHighWaterThenDroppedThenClosed) {
  Served served("max_queued_bytes = 10240\n");
  WsClient ws = served.connect();
  ws.send_text("burst");
  const auto results = served.adapter->wait_for_results();
  ASSERT_EQ(results.size(), 12u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(results[i], SendResult::kQueued) << i;  // <= 5,120
  for (int i = 5; i < 10; ++i) EXPECT_EQ(results[i], SendResult::kQueuedOverHighWater) << i;
  EXPECT_EQ(results[10], SendResult::kDropped);  // over 10,240: "disconnect" closes with 1013
  EXPECT_EQ(results[11], SendResult::kClosed);   // the close is decided
  EXPECT_EQ(ws.wait_close(), 1013);
}

TEST(SendResultTest, DropOldestDropsAndStaysOpen) {
  Served served("max_queued_bytes = 10240\nslow_consumer = \"drop_oldest\"\n");
  WsClient ws = served.connect();
  ws.send_text("burst droppable");
  const auto results = served.adapter->wait_for_results();
  ASSERT_EQ(results.size(), 12u);
  EXPECT_EQ(results[4], SendResult::kQueued);
  EXPECT_EQ(results[9], SendResult::kQueuedOverHighWater);
  EXPECT_EQ(results[10], SendResult::kDropped);  // the oldest made room for it
  EXPECT_EQ(results[11], SendResult::kDropped);
  // The two oldest went; the rest arrive, and the connection stays open.
  EXPECT_EQ(ws.read_message().data.substr(0, 2), "2x");
  for (int i = 3; i < 12; ++i) EXPECT_EQ(std::stoi(ws.read_message().data), i);
}

TEST(SendResultTest, MessageLimitCountsToo) {
  Served served("max_queued_messages = 3\n");
  WsClient ws = served.connect();
  ws.send_text("burst");
  const auto results = served.adapter->wait_for_results();
  ASSERT_EQ(results.size(), 12u);
  EXPECT_EQ(results[2], SendResult::kQueued);
  EXPECT_EQ(results[3], SendResult::kDropped);
  EXPECT_EQ(ws.wait_close(), 1013);
}

// From another thread while the service thread is busy (inside on_message): nothing is taken over
// yet, so the answers count the frames on their way through the inbox.
TEST(SendResultTest, FramesOnTheirWayCountFromAnotherThread) {
  Served served("max_queued_bytes = 10240\nqueue_high_water_bytes = 2000\n");
  WsClient ws = served.connect();
  ws.send_text("burst thread");
  const auto results = served.adapter->wait_for_results();
  ASSERT_EQ(results.size(), 12u);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(results[i], SendResult::kQueued) << i;
  for (int i = 2; i < 10; ++i) EXPECT_EQ(results[i], SendResult::kQueuedOverHighWater) << i;
  EXPECT_EQ(results[10], SendResult::kDropped);
  EXPECT_EQ(results[11], SendResult::kDropped);  // (its close was not decided yet)
  EXPECT_EQ(ws.wait_close(), 1013);
  // Afterwards, from any thread: closed.
  auto connection = served.adapter->wait_for_connection();
  testing::eventually([&] { return !connection->is_open(); }, 5s, 5ms);
  std::thread([&] {
    EXPECT_EQ(connection->send(Frame::text("late")), SendResult::kClosed);
  }).join();
}

}  // namespace
}  // namespace wsbridge
