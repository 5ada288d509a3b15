// Small pieces of the core: frames, the adapter registry, the command line, the echo adapter.
#include <gtest/gtest.h>

#include "session/frame_queue.hpp"

#include "config/cli.hpp"
#include "echo_adapter.hpp"
#include "wsbridge/adapter_registry.hpp"

namespace wsbridge {
namespace {

TEST(FrameTest, HoldsPayloadBehindHeadroom) {
  Frame f = Frame::text("hello");
  EXPECT_TRUE(f.is_text());
  EXPECT_EQ(f.payload(), "hello");
  EXPECT_EQ(f.size(), 5u);
  EXPECT_EQ(reinterpret_cast<const char*>(f.payload_with_headroom()), f.payload().data());
  Frame b = Frame::binary(std::string_view("\0\1\2", 3));
  EXPECT_TRUE(b.is_binary());
  EXPECT_EQ(b.payload(), std::string_view("\0\1\2", 3));
  EXPECT_EQ(Frame().size(), 0u);
}

TEST(FrameTest, CopiesShareOneBuffer) {
  Frame f = Frame::text("shared");
  std::vector<Frame> fanout(1000, f);
  EXPECT_EQ(f.use_count(), 1001);
  for (const Frame& copy : fanout) EXPECT_EQ(copy.payload().data(), f.payload().data());
}

TEST(FrameTest, AdoptKeepsTheBufferAndConcatPrefixes) {
  std::string buffer(kFrameHeadroom, '\0');
  buffer += "payload";
  Frame f = Frame::adopt(FrameKind::kBinary, std::move(buffer));
  EXPECT_EQ(f.payload(), "payload");
  EXPECT_THROW(Frame::adopt(FrameKind::kText, std::string("short")), std::invalid_argument);
  EXPECT_EQ(Frame::concat(FrameKind::kText, "Echo: ", "hi").payload(), "Echo: hi");
}

TEST(AdapterRegistryTest, RegistersByName) {
  AdapterRegistry registry;
  register_builtin_adapters(registry);
  EXPECT_NE(registry.find("echo"), nullptr);
  EXPECT_EQ(registry.find("nope"), nullptr);
  EXPECT_THROW(registry.add("echo", [] { return std::make_unique<echo::EchoKind>(); }),
               std::invalid_argument);
  EXPECT_THROW(registry.add("", [] { return std::make_unique<echo::EchoKind>(); }),
               std::invalid_argument);
  EXPECT_EQ(registry.names(), (std::vector<std::string>{"echo", "http", "mqtt"}));
  EXPECT_EQ(registry.section_owner("upstreams"), "mqtt");
  EXPECT_EQ(registry.section_owner("listeners"), "");
  auto factory = [] { return std::make_unique<echo::EchoKind>(); };
  EXPECT_THROW(registry.add("other", factory, {"upstreams"}), std::invalid_argument);
  EXPECT_THROW(registry.add("other", factory, {"routes"}), std::invalid_argument);
  EXPECT_EQ(registry.find("other"), nullptr);  // a refused registration leaves nothing behind
}

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

TEST(FrameQueueTest, KeepsOrderThroughCompactionErasureAndRelease) {
  FrameQueue q;
  EXPECT_TRUE(q.empty());
  int next_in = 0;
  int next_out = 0;
  // Interleaved pushes and pops cross the compaction threshold many times.
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 7; ++i) q.push_back(Frame::text(std::to_string(next_in++)));
    for (int i = 0; i < 5; ++i) {
      ASSERT_EQ(q.front().payload(), std::to_string(next_out++));
      q.pop_front();
    }
  }
  EXPECT_EQ(q.size(), static_cast<std::size_t>(next_in - next_out));
  // Erasing from the middle (drop_oldest) keeps the others in order.
  for (auto it = q.begin(); it != q.end();) {
    it = std::stoi(std::string(it->payload())) % 2 == 0 ? q.erase(it) : std::next(it);
  }
  int last = -1;
  while (!q.empty()) {
    const int v = std::stoi(std::string(q.front().payload()));
    EXPECT_EQ(v % 2, 1);
    EXPECT_GT(v, last);
    last = v;
    q.pop_front();
  }
  // A popped frame's buffer is released at once, not when the slot is reused.
  Frame shared = Frame::text("shared");
  q.push_back(shared);
  EXPECT_EQ(shared.use_count(), 2);
  q.pop_front();
  EXPECT_EQ(shared.use_count(), 1);
  q.release_memory();
  q.push_back(Frame::text("again"));
  EXPECT_EQ(q.front().payload(), "again");
}

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

TEST(CliTest, ParsesActions) {
  auto r = parse_command_line({"--config", "a.toml"});
  ASSERT_TRUE(r.options);
  EXPECT_EQ(r.options->action, CliOptions::Action::kRun);
  EXPECT_EQ(r.options->config_file, "a.toml");
  r = parse_command_line({"--check-config=b.toml", "--log-level", "debug"});
  ASSERT_TRUE(r.options);
  EXPECT_EQ(r.options->action, CliOptions::Action::kCheckConfig);
  EXPECT_EQ(r.options->config_file, "b.toml");
  EXPECT_EQ(r.options->log_level, "debug");
  EXPECT_EQ(parse_command_line({"--version"}).options->action, CliOptions::Action::kVersion);
  EXPECT_EQ(parse_command_line({"-h"}).options->action, CliOptions::Action::kHelp);
}

TEST(CliTest, RejectsBadUsage) {
  EXPECT_EQ(parse_command_line({}).error, "no config file: use --config FILE");
  EXPECT_EQ(parse_command_line({"--config"}).error, "--config needs a FILE");
  EXPECT_EQ(parse_command_line({"--frobnicate"}).error, "unknown argument \"--frobnicate\"");
  EXPECT_EQ(parse_command_line({"-c", "a", "--log-level", "loud"}).error,
            "--log-level must be error, warn, info or debug, not \"loud\"");
  EXPECT_EQ(parse_command_line({"-c", "a", "--check-config", "b"}).error,
            "option --check-config conflicts with an earlier one");
  EXPECT_NE(usage_text().find("--check-config FILE"), std::string::npos);
}

}  // namespace
}  // namespace wsbridge
