// Regression test for the bound on what clients' unfinished messages hold together ([limits]
// inbound_bytes_in_flight). Before it, each connection could hold an unfinished message of up to
// max_message_bytes for as long as it kept the connection: 300 connections holding just under
// 1 MiB each took wsbridge from 12 MB to 320 MB of RSS, and 1,000 connections from one address
// (the per-address default) about 1 GB.
#include <gtest/gtest.h>

#include <thread>

#include "integration/wsbridge_instance.hpp"
#include "support/eventually.hpp"
#include "support/http_backend.hpp"
#include "support/prometheus.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kKiB = 1024;

// One service thread, so its share is the whole 1 MiB; the admin listener for the metrics; then
// the test's route.
std::string budget_config(const std::string& route) {
  return R"(
[server]
threads = 1
[admin]
port = ${PORT2}
token_env = "WSBRIDGE_TEST_ADMIN_TOKEN"
[limits]
inbound_bytes_in_flight = "1MiB"
[[listeners]]
port = ${PORT}
)" + route;
}

class InboundBudget : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("WSBRIDGE_TEST_ADMIN_TOKEN", "admin-secret", 1);
    server_.emplace(budget_config(R"(
[[routes]]
path = "/echo"
adapter = "echo"
max_message_bytes = "512KiB"
)"));
  }

  WsClient connect() { return WsClient::connect(server_->client("/echo")); }

  // The first fragment of a binary message that is not finished (yet).
  static void start_message(WsClient& ws, std::size_t bytes, char fill) {
    ws.send_frame(Opcode::kBinary, std::string(bytes, fill), /*fin=*/false);
  }

  // A ping after what was sent: its pong says the server read all of it and kept the connection;
  // a close frame says it refused. Returns the close code, or 0 for a pong.
  static std::uint16_t after_sync(WsClient& ws) {
    ws.send_frame(Opcode::kPing, "sync");
    const Frame f = ws.read_frame(10s);
    if (f.opcode == Opcode::kPong) return 0;
    if (f.opcode != Opcode::kClose || f.payload.size() < 2) {
      ADD_FAILURE() << "unexpected frame " << opcode_name(f.opcode);
      return 1;
    }
    return static_cast<std::uint16_t>((static_cast<unsigned char>(f.payload[0]) << 8) |
                                      static_cast<unsigned char>(f.payload[1]));
  }

  std::optional<double> budget_closes() {
    return admin_metric(server_->port2, "wsbridge_inbound_budget_closes_total{route=\"/echo\"}");
  }

  std::optional<WsbridgeInstance> server_;
};

TEST_F(InboundBudget, UnfinishedMessagesShareOneBoundAndGiveBackWhatTheyHeld) {
  WsClient a = connect();
  WsClient b = connect();
  start_message(a, 400 * kKiB, 'a');
  EXPECT_EQ(after_sync(a), 0);
  start_message(b, 400 * kKiB, 'b');
  EXPECT_EQ(after_sync(b), 0);

  // 800 KiB held: another 400 KiB would pass the 1 MiB, though it is under max_message_bytes.
  WsClient c = connect();
  start_message(c, 400 * kKiB, 'c');
  EXPECT_EQ(after_sync(c), 1013);
  EXPECT_TRUE(c.tcp().wait_closed(10s));

  // A finished message gives its bytes back, and arrives whole.
  a.send_frame(Opcode::kContinuation, std::string(kKiB, 'A'), /*fin=*/true);
  const WsClient::Message echoed = a.read_message(10s);
  ASSERT_EQ(echoed.data.size(), 401 * kKiB);
  EXPECT_EQ(echoed.data, std::string(400 * kKiB, 'a') + std::string(kKiB, 'A'));
  WsClient d = connect();
  start_message(d, 400 * kKiB, 'd');
  EXPECT_EQ(after_sync(d), 0) << "a's bytes were not given back when its message was whole";

  // So does a connection that goes in the middle of its message.
  b.tcp().close();
  bool fits = false;
  for (int attempt = 0; attempt < 50 && !fits; ++attempt) {  // (b's close is seen a moment later)
    WsClient probe = connect();
    start_message(probe, 400 * kKiB, 'p');
    fits = after_sync(probe) == 0;
    if (!fits) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(fits) << "b's bytes were not given back when it went";
  EXPECT_GE(budget_closes().value_or(0), 1);
}

TEST_F(InboundBudget, SmallFragmentedMessagesPassWhileTheBoundIsSpent) {
  WsClient a = connect();
  WsClient b = connect();
  WsClient c = connect();
  start_message(a, 400 * kKiB, 'a');
  start_message(b, 400 * kKiB, 'b');
  start_message(c, 223 * kKiB, 'c');
  EXPECT_EQ(after_sync(a), 0);
  EXPECT_EQ(after_sync(b), 0);
  EXPECT_EQ(after_sync(c), 0);  // 1,023 KiB held of 1,024

  // Three fragments of 1 KiB go over the bound, but every connection may hold 4 KiB.
  WsClient small = connect();
  small.send_frame(Opcode::kText, std::string(kKiB, 'x'), false);
  small.send_frame(Opcode::kContinuation, std::string(kKiB, 'y'), false);
  small.send_frame(Opcode::kContinuation, std::string(kKiB, 'z'), true);
  EXPECT_EQ(small.read_message(10s).data,
            std::string(kKiB, 'x') + std::string(kKiB, 'y') + std::string(kKiB, 'z'));

  // Past those 4 KiB the bound is spent, and a connection holding more than this one would is
  // closed in its place with 1013 (try again later): one of the two holding 400 KiB.
  WsClient larger = connect();
  larger.send_frame(Opcode::kText, std::string(4 * kKiB, 'x'), false);
  EXPECT_EQ(after_sync(larger), 0);
  larger.send_frame(Opcode::kContinuation, std::string(4 * kKiB, 'y'), true);
  EXPECT_EQ(larger.read_message(10s).data, std::string(4 * kKiB, 'x') + std::string(4 * kKiB, 'y'));
  const std::uint16_t a_sync = after_sync(a);
  const std::uint16_t b_sync = after_sync(b);
  EXPECT_EQ(std::min(a_sync, b_sync), 0) << "one of them only";
  EXPECT_EQ(std::max(a_sync, b_sync), 1013);
  EXPECT_EQ(after_sync(c), 0) << "the largest holder goes, not the others";
  EXPECT_EQ(budget_closes().value_or(0), 1);
}

// The same when the bound is held by a few large unfinished messages (a client keeping them open
// on purpose): a client with a smaller message goes on, and those holders go, the largest first.
// Before, every new large message was refused for as long as they stayed.
TEST_F(InboundBudget, HoldersOfTheMostGoBeforeASmallerMessageIsRefused) {
  WsClient big = connect();
  WsClient medium = connect();
  start_message(big, 500 * kKiB, 'b');
  start_message(medium, 400 * kKiB, 'm');
  EXPECT_EQ(after_sync(big), 0);
  EXPECT_EQ(after_sync(medium), 0);
  // 900 KiB held; 300 more need room: the 500 KiB one goes, the 400 KiB one stays.
  WsClient next = connect();
  start_message(next, 300 * kKiB, 'n');
  EXPECT_EQ(after_sync(next), 0);
  EXPECT_EQ(big.wait_close(10s), 1013);
  EXPECT_EQ(after_sync(medium), 0);
  // A message larger than any held one is still refused (a tie too): nobody holds more.
  WsClient larger = connect();
  start_message(larger, 400 * kKiB, 'l');
  EXPECT_EQ(after_sync(larger), 1013);
  // The ones that stayed finish whole.
  next.send_frame(Opcode::kContinuation, "!", /*fin=*/true);
  EXPECT_EQ(next.read_message(10s).data, std::string(300 * kKiB, 'n') + "!");
  medium.send_frame(Opcode::kContinuation, "!", /*fin=*/true);
  EXPECT_EQ(medium.read_message(10s).data, std::string(400 * kKiB, 'm') + "!");
  EXPECT_EQ(budget_closes().value_or(0), 2);
}

// The http route's twin: messages waiting for a slow backend (up to max_queued messages of
// max_message_bytes per connection) count too, against half of the bound. Past it the client is
// paused, not closed: what it sent was accepted, and every answer still comes.
TEST(InboundBudgetHttp, MessagesWaitingForTheBackendPauseTheClientPastHalfTheBound) {
  setenv("WSBRIDGE_TEST_ADMIN_TOKEN", "admin-secret", 1);
  HttpBackend backend;
  std::string config = budget_config(R"(
[[routes]]
path = "/slow"
adapter = "http"
mode = "message"
backend = "${BACKEND}/slow/1500"
max_message_bytes = "512KiB"
)");
  WsbridgeInstance::replace_all(config, "${BACKEND}", backend.base_url());
  WsbridgeInstance server(config);
  const auto paused = [&] {
    return admin_metric(server.port2, "wsbridge_connections_reading_paused{route=\"/slow\"}")
        .value_or(-1);
  };
  const auto wait_paused = [&](double n) {
    eventually([&] { return paused() == n; });
    return paused();
  };

  // One message per connection goes to the backend at a time (message mode); the rest wait:
  // 2 + 1 messages of 200 KiB, 600 KiB, over half of the 1 MiB. Whichever came last is paused
  // (max_queued, 64, is far away).
  WsClient a = WsClient::connect(server.client("/slow"));
  WsClient b = WsClient::connect(server.client("/slow"));
  for (int i = 0; i < 3; ++i) a.send_binary(std::string(200 * kKiB, 'a'));
  for (int i = 0; i < 2; ++i) b.send_binary(std::string(200 * kKiB, 'b'));
  EXPECT_EQ(wait_paused(1), 1);

  // Nothing is lost: each client gets every answer, and is read again once its messages went to
  // the backend.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(a.read_message(10s).data, "slow");
  for (int i = 0; i < 2; ++i) EXPECT_EQ(b.read_message(10s).data, "slow");
  EXPECT_EQ(wait_paused(0), 0);
  EXPECT_EQ(backend.stats().value("requests", 0), 5);
}

}  // namespace
}  // namespace wsbridge::testing
