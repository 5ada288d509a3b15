// Shared permessage-deflate end to end (issue #20; docs/ARCHITECTURE.md "Compression"), with the
// tests' own raw client, which reads frames as they are on the wire: the exact agreement, RSV1
// on what is compressed and only there, every window a client can ask for, messages from 1 byte
// to 1 MiB both ways, the limits while inflating, and per-route and reload behaviour.
#include <gtest/gtest.h>

#include <csignal>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "integration/wsbridge_instance.hpp"
#include "support/http_backend.hpp"
#include "support/prometheus.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kConfig = R"(
[admin]
port = ${PORT2}
token_env = "WSBRIDGE_TEST_ADMIN_TOKEN"
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

// What a client with exactly this window would inflate: nullopt when a back reference reaches
// further than the window (or the data is not deflate at all).
std::optional<std::string> inflate_with_window(std::string_view payload, int bits) {
  try {
    return Inflater(bits).decompress(payload);
  } catch (const std::runtime_error&) {
    return std::nullopt;
  }
}

class CompressionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("WSBRIDGE_TEST_ADMIN_TOKEN", "admin-secret", 1);
    server_.emplace(kConfig);
  }
  double metric(const std::string& series) {
    HttpResponse r = http_get("127.0.0.1", server_->port2, "/metrics",
                              {{"Authorization", "Bearer admin-secret"}});
    return sample(r.body, series).value_or(0);  // (counters appear at their first use)
  }
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
    EXPECT_TRUE(f.rsv1) << bits;  // (8: zlib's 9-bit output, which stays within 256 bytes)
    const auto payload = f.rsv1 ? inflate_with_window(f.payload, bits) : std::optional(f.payload);
    ASSERT_TRUE(payload) << "window " << bits << " exceeded";
    EXPECT_TRUE(*payload == message) << bits;
  }
}

// The point of the shared mode: a message pushed to every session of a route (a fan-out, as the
// mqtt adapter's) is deflated once, and every session gets the same compressed bytes.
TEST_F(CompressionTest, AFanOutIsDeflatedOnceForEverySubscriber) {
  ClientOptions opts = server_->client("/echo");
  opts.offer_deflate = true;
  std::vector<WsClient> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(WsClient::connect(opts));
  WsClient plain = WsClient::connect(server_->client("/echo"));  // offers nothing
  const double before = metric("wsbridge_deflated_messages_total");
  const std::string message = telemetry(20000);
  const HttpResult r = http_request(
      server_->port2, "POST", "/api/v1/push",
      nlohmann::json{{"route", "/echo"}, {"data", message}}.dump(),
      {{"Authorization", "Bearer admin-secret"}, {"Content-Type", "application/json"}});
  ASSERT_EQ(r.status, 200) << r.body;
  std::optional<std::string> first;
  for (WsClient& ws : clients) {
    const Frame f = ws.read_frame(5s);
    ASSERT_TRUE(f.rsv1);
    if (!first) first = f.payload;
    EXPECT_TRUE(f.payload == *first);  // the same bytes for everyone
    EXPECT_EQ(inflate_with_window(f.payload, 15), message);
  }
  const Frame p = plain.read_frame(5s);
  EXPECT_FALSE(p.rsv1);
  EXPECT_TRUE(p.payload == message);
  EXPECT_EQ(metric("wsbridge_deflated_messages_total") - before, 1);
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
  // Cut inside a block: it passed as what inflated of it, and a stored block's header without
  // its data came back as the 00 00 ff ff the server appends (a hostile probe). 1007 now.
  for (const std::string& cut : {std::string("\x00\x05\x00\xfa\xff", 5),
                                 testing::Deflater().compress(telemetry(2000)).substr(0, 40)}) {
    WsClient truncated = WsClient::connect(opts);
    truncated.send_frame(Opcode::kBinary, cut, true, true, /*rsv1=*/true);
    EXPECT_EQ(truncated.wait_close(5s), 1007);
  }
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
