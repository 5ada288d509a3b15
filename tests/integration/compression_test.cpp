// Shared permessage-deflate end to end (issue #20; docs/ARCHITECTURE.md "Compression"), with the
// tests' own raw client, which reads frames as they are on the wire: the exact agreement, RSV1
// on what is compressed and only there, every window a client can ask for, messages from 1 byte
// to 1 MiB both ways, the limits while inflating, and per-route and reload behaviour.
#include <gtest/gtest.h>
#include <zlib.h>

#include <csignal>
#include <random>
#include <thread>

#include "integration/wsbridge_instance.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kConfig = R"(
[[listeners]]
port = ${PORT}
[[routes]]
path = "/echo"
adapter = "echo"
max_message_bytes = "2MiB"
[[routes]]
path = "/plain"
adapter = "echo"
compression = "off"
[[routes]]
path = "/narrow"
adapter = "echo"
compression_window_bits = 10
compression_threshold = 1000
compression_level = 9
[[routes]]
path = "/small"
adapter = "echo"
max_message_bytes = 4096
)";

std::string telemetry(std::size_t n) {
  std::string s;
  while (s.size() < n)
    s += R"({"device":"pump-12","rpm":1480,"ok":true,"seq":)" + std::to_string(s.size()) + "},";
  s.resize(n);
  return s;
}

// What a client with exactly this window would inflate (zlib, -bits): fails on any back
// reference further than the window.
std::optional<std::string> inflate_with_window(std::string_view payload, int bits) {
  z_stream z{};
  if (inflateInit2(&z, -bits) != Z_OK) return std::nullopt;
  std::string in(payload);
  in.append("\x00\x00\xff\xff", 4);
  std::string out(8u << 20, '\0');
  z.next_in = reinterpret_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&z, Z_SYNC_FLUSH);
  inflateEnd(&z);
  if (rc != Z_OK && rc != Z_STREAM_END) return std::nullopt;
  out.resize(out.size() - z.avail_out);
  return out;
}

class CompressionTest : public ::testing::Test {
 protected:
  void SetUp() override { server_.emplace(kConfig); }
  ClientOptions offer(const std::string& path, const std::string& extensions) {
    ClientOptions opts = server_->client(path);
    opts.extra_headers.emplace_back("Sec-WebSocket-Extensions", extensions);
    return opts;
  }
  std::string agreed(const WsClient& ws) {
    return ws.handshake_response().header("Sec-WebSocket-Extensions").value_or("(none)");
  }
  std::optional<WsbridgeInstance> server_;
};

TEST_F(CompressionTest, TheAgreementIsExactlyWhatTheSharedModeNeeds) {
  WsClient ws = WsClient::connect(offer("/echo", "permessage-deflate; client_max_window_bits"));
  EXPECT_EQ(agreed(ws),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  ws = WsClient::connect(offer("/echo", "permessage-deflate; server_max_window_bits=11"));
  EXPECT_EQ(agreed(ws),
            "permessage-deflate; server_no_context_takeover; "
            "client_no_context_takeover; server_max_window_bits=11");
  // A bad offer first, a good one second: the good one.
  ws = WsClient::connect(offer("/echo", "permessage-deflate; x=1, permessage-deflate"));
  EXPECT_EQ(agreed(ws),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  // Nothing acceptable, or compression off on the route: no extension, and the route works.
  for (const auto& [path, ext] : {std::pair<std::string, std::string>{
                                      "/echo", "permessage-deflate; server_max_window_bits=99"},
                                  {"/echo", "x-webkit-deflate-frame"},
                                  {"/plain", "permessage-deflate"}}) {
    WsClient none = WsClient::connect(offer(path, ext));
    EXPECT_EQ(agreed(none), "(none)") << path << " " << ext;
    none.send_text(telemetry(5000));
    const Frame f = none.read_frame(5s);
    EXPECT_FALSE(f.rsv1);
    EXPECT_EQ(f.payload, telemetry(5000));
  }
}

TEST_F(CompressionTest, ServerFramesAreCompressedFromTheThresholdOnAndInflateByThemselves) {
  ClientOptions opts = server_->client("/echo");
  opts.offer_deflate = true;
  WsClient ws = WsClient::connect(opts);
  ASSERT_TRUE(ws.deflate_negotiated());
  for (std::size_t size : {std::size_t{1}, std::size_t{127}, std::size_t{128}, std::size_t{200},
                           std::size_t{65536}, std::size_t{1u << 20}}) {
    const std::string message = telemetry(size);
    ws.send_text(message);  // compressed by the client (every size)
    const Frame f = ws.read_frame(10s);
    EXPECT_EQ(f.opcode, Opcode::kText);
    EXPECT_EQ(f.rsv1, size >= 128) << size;  // the default threshold
    // Each compressed frame inflates on its own (server_no_context_takeover): a fresh inflater.
    const auto payload = f.rsv1 ? inflate_with_window(f.payload, 15) : std::optional(f.payload);
    ASSERT_TRUE(payload) << size;
    EXPECT_TRUE(*payload == message) << size;
    if (f.rsv1) {
      EXPECT_LT(f.payload.size(), message.size() / 2) << size;
    }
  }
  // Binary too, and what does not shrink goes as it is.
  std::mt19937 rng(7);
  std::string noise(5000, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  ws.send_binary(noise);
  const Frame f = ws.read_frame(5s);
  EXPECT_EQ(f.opcode, Opcode::kBinary);
  EXPECT_FALSE(f.rsv1);
  EXPECT_TRUE(f.payload == noise);
}

TEST_F(CompressionTest, EveryWindowAClientAsksForIsHonoured) {
  for (int bits = 8; bits <= 15; ++bits) {
    WsClient ws = WsClient::connect(
        offer("/echo", "permessage-deflate; server_max_window_bits=" + std::to_string(bits)));
    ASSERT_NE(agreed(ws).find("server_max_window_bits=" + std::to_string(bits)), std::string::npos);
    const std::string message = telemetry(200000);  // repeats far beyond any window
    ws.send_text(message, false);
    const Frame f = ws.read_frame(10s);
    EXPECT_EQ(f.rsv1, bits >= 9) << bits;  // zlib cannot write 8-bit windows: sent as it is
    const auto payload = f.rsv1 ? inflate_with_window(f.payload, bits) : std::optional(f.payload);
    ASSERT_TRUE(payload) << "window " << bits << " exceeded";
    EXPECT_TRUE(*payload == message) << bits;
  }
}

TEST_F(CompressionTest, RouteSettingsOverrideTheListenersDefaults) {
  WsClient ws = WsClient::connect(offer("/narrow", "permessage-deflate"));
  EXPECT_EQ(agreed(ws),
            "permessage-deflate; server_no_context_takeover; "
            "client_no_context_takeover; server_max_window_bits=10");
  ws.send_text(telemetry(999), false);
  EXPECT_FALSE(ws.read_frame(5s).rsv1);  // under this route's threshold
  ws.send_text(telemetry(50000), false);
  const Frame f = ws.read_frame(5s);
  ASSERT_TRUE(f.rsv1);
  EXPECT_EQ(inflate_with_window(f.payload, 10), telemetry(50000));
}

TEST_F(CompressionTest, ClientMessagesAreHeldToTheLimitWhileInflating) {
  ClientOptions opts = server_->client("/small");
  opts.offer_deflate = true;
  WsClient ok = WsClient::connect(opts);
  ok.send_text(telemetry(4096));  // at the limit once inflated
  EXPECT_EQ(ok.read_message(5s).data, telemetry(4096));
  ok.send_text(std::string(4097, 'a'));  // a few bytes on the wire, one too many inflated
  EXPECT_EQ(ok.wait_close(5s), 1009);
  // Corrupt data, and invalid UTF-8 that only shows once inflated: 1007.
  WsClient corrupt = WsClient::connect(opts);
  corrupt.send_frame(Opcode::kText, "\xff\xff\xff\xff", true, true, /*rsv1=*/true);
  EXPECT_EQ(corrupt.wait_close(5s), 1007);
  WsClient bad_text = WsClient::connect(opts);
  bad_text.send_text(std::string(300, 'x') + "\xC3\x28");
  EXPECT_EQ(bad_text.wait_close(5s), 1007);
  // RSV1 on a continuation frame is a protocol error (RFC 7692 6.1).
  WsClient cont = WsClient::connect(opts);
  cont.send_frame(Opcode::kText, "a", false);
  cont.send_frame(Opcode::kContinuation, "b", true, true, /*rsv1=*/true);
  EXPECT_EQ(cont.wait_close(5s), 1002);
}

TEST_F(CompressionTest, FragmentedCompressedMessagesAndInterleavedControlFrames) {
  ClientOptions opts = server_->client("/echo");
  opts.offer_deflate = true;
  WsClient ws = WsClient::connect(opts);
  const std::string message = telemetry(300000);
  const std::string wire = ws.compress(message);
  const std::size_t third = wire.size() / 3;
  ws.send_frame(Opcode::kText, wire.substr(0, third), false, true, /*rsv1=*/true);
  ws.send_frame(Opcode::kPing, "p");
  ws.send_frame(Opcode::kContinuation, wire.substr(third, third), false);
  ws.send_text("in between", false);  // a new message inside an unfinished one: an error
  EXPECT_EQ(ws.wait_close(5s), 1002);
  // The same, legally: uncompressed after compressed after uncompressed, fragmented.
  WsClient ok = WsClient::connect(opts);
  ok.send_text("first", false);
  ok.send_frame(Opcode::kText, wire.substr(0, third), false, true, true);
  ok.send_frame(Opcode::kPing, "p");
  ok.send_frame(Opcode::kContinuation, wire.substr(third, third), false);
  ok.send_frame(Opcode::kContinuation, wire.substr(2 * third), true);
  ok.send_text("last", false);
  EXPECT_EQ(ok.read_message(5s).data, "first");
  EXPECT_TRUE(ok.read_message(10s).data == message);
  EXPECT_EQ(ok.read_message(5s).data, "last");
}

TEST_F(CompressionTest, AReloadChangesCompressionForNewConnectionsOnly) {
  ClientOptions opts = server_->client("/echo");
  opts.offer_deflate = true;
  WsClient before = WsClient::connect(opts);
  std::string next = kConfig;
  WsbridgeInstance::replace_all(next, "port = ${PORT}\n",
                                "port = ${PORT}\ncompression = \"off\"\n");
  server_->rewrite_config(next);
  server_->process->signal(SIGHUP);
  ASSERT_TRUE(server_->process->wait_for_output("configuration reloaded", 10s));
  WsClient after = WsClient::connect(opts);
  EXPECT_FALSE(after.deflate_negotiated());
  before.send_text(telemetry(1000));
  EXPECT_TRUE(before.read_frame(5s).rsv1);  // kept what it agreed
  after.send_text(telemetry(1000));
  EXPECT_FALSE(after.read_frame(5s).rsv1);
}

}  // namespace
}  // namespace wsbridge::testing
