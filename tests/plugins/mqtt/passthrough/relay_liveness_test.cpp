// plugins/mqtt/passthrough/relay.cpp and connect_deadlines.cpp: the broker going away or never
// answering, flow control both ways, keepalive (the broker pinged for the browser, a silent
// browser closed) and the CONNECT deadline.
#include <thread>

#include "passthrough/connect_deadlines.hpp"
#include "relay_fixture.hpp"

namespace wsbridge::mqtt::testing {
namespace {

TEST_F(RelayTest, BrokerUnavailableWhileConnectingRefusesTheConnect) {
  start();
  from_browser(connect_packet(wire::kMqtt5, "dash"));
  endpoint_.handler->on_closed("connection refused");
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  std::string error;
  EXPECT_EQ(wire::parse_connack(got[0], wire::kMqtt5, error)->code,
            wire::reason::kServerUnavailable);
  EXPECT_EQ(*browser_->close_code, CloseCode::kTryAgainLater);
}

TEST_F(RelayTest, BrokerGoneWhileRelayingDisconnectsMqtt5Clients) {
  connect(wire::kMqtt5);
  endpoint_.handler->on_closed("connection closed");
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  std::string error;
  EXPECT_EQ(wire::parse_disconnect(got[0], wire::kMqtt5, error), wire::reason::kServerShuttingDown);
  EXPECT_EQ(*browser_->close_code, CloseCode::kGoingAway);
}

TEST_F(RelayTest, SlowBrokerPausesTheBrowserAndSlowBrowserPausesTheBroker) {
  connect(wire::kMqtt311);
  endpoint_.stream->room = false;
  from_browser(publish_packet(wire::kMqtt311, "users/alice/out/1", 0));
  EXPECT_TRUE(browser_->reading_paused);
  endpoint_.handler->on_drained();
  EXPECT_FALSE(browser_->reading_paused);

  browser_->next_send = SendResult::kQueuedOverHighWater;
  endpoint_.handler->on_data(publish_packet(wire::kMqtt311, "sensors/t", 0));
  EXPECT_TRUE(endpoint_.stream->reading_paused);
  relay_->client_drained();
  EXPECT_FALSE(endpoint_.stream->reading_paused);
}

// What the relay answers itself (here an MQTT 5 PUBACK refusing a publish, larger than the
// publish) is queued at the speed the browser sends: past the high-water mark the browser is not
// read until its queue drained, as the echo and http routes do. (Before, a browser sending
// without reading grew that queue until max_queued_bytes closed it with 1013, wherever the core's
// own hold on reading mid-frame did not apply: a socket full at a frame's end.)
TEST_F(RelayTest, BrowserNotReadingOurAnswersIsPausedUntilItsQueueDrained) {
  connect(wire::kMqtt5);
  browser_->next_send = SendResult::kQueuedOverHighWater;
  from_browser(publish_packet(wire::kMqtt5, "not/allowed", 1, 7));
  auto got = browser_->take_packets();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(wire::packet_type(got[0]), wire::PacketType::kPuback);
  EXPECT_TRUE(browser_->reading_paused);
  EXPECT_TRUE(broker_packets().empty());
  EXPECT_FALSE(browser_->close_code);
  browser_->next_send = SendResult::kQueued;
  relay_->client_drained();
  EXPECT_FALSE(browser_->reading_paused);
}

// Reading from the browser resumes only when neither holds it: the broker taking its bytes again
// and its own queue drained, in either order.
TEST_F(RelayTest, BrowserIsReadAgainOnlyOnceTheBrokerAndItsQueueBothAllow) {
  connect(wire::kMqtt311);
  auto both_hold = [&] {
    endpoint_.stream->room = false;
    browser_->next_send = SendResult::kQueuedOverHighWater;
    from_browser(publish_packet(wire::kMqtt311, "users/alice/out/1", 0));        // the broker's
    endpoint_.handler->on_data(publish_packet(wire::kMqtt311, "sensors/t", 0));  // the browser's
    endpoint_.stream->room = true;
    browser_->next_send = SendResult::kQueued;
    ASSERT_TRUE(browser_->reading_paused);
  };
  both_hold();
  endpoint_.handler->on_drained();
  EXPECT_TRUE(browser_->reading_paused) << "resumed while its queue was still over high water";
  relay_->client_drained();
  EXPECT_FALSE(browser_->reading_paused);
  EXPECT_FALSE(endpoint_.stream->reading_paused);

  both_hold();
  relay_->client_drained();
  EXPECT_TRUE(browser_->reading_paused) << "resumed while the broker took nothing";
  EXPECT_FALSE(endpoint_.stream->reading_paused);
  endpoint_.handler->on_drained();
  EXPECT_FALSE(browser_->reading_paused);
}

TEST_F(RelayTest, BrokerIsPingedForABrowserThatDoesNotPing) {
  connect(wire::kMqtt311, 0);
  // Ticks a quarter of the keepalive (300 s) apart; the ping at the fourth quiet one (counted from
  // the CONNACK: between one and one and a quarter keepalives after the last packet,
  // well before the broker's 1.5; at the fifth it came at up to 1.5, which a busy CI missed).
  EXPECT_EQ(endpoint_.stream->timer, std::chrono::milliseconds(75'000));
  auto ticks = [&](int n) {
    for (int i = 0; i < n; ++i) endpoint_.handler->on_timer();
    return broker_packets();
  };
  EXPECT_TRUE(ticks(3).empty());
  EXPECT_EQ(ticks(1), (std::vector<std::string>{std::string("\xC0\x00", 2)}));
  // The broker's answer is ours, not the browser's.
  endpoint_.handler->on_data(std::string("\xD0\x00", 2));
  EXPECT_TRUE(browser_->take_packets().empty());
  // A browser whose packets reach the broker keeps the session alive itself.
  for (int i = 0; i < 6; ++i) {
    from_browser(publish_packet(wire::kMqtt311, "users/alice/out/1", 0));
    broker_packets();
    EXPECT_TRUE(ticks(1).empty());
  }
  // Packets the broker never saw (publishes the ACL dropped) keep nothing alive there.
  for (int i = 0; i < 3; ++i) {
    from_browser(publish_packet(wire::kMqtt311, "sensors/denied", 0));
    EXPECT_TRUE(ticks(1).empty());
  }
  EXPECT_EQ(ticks(1), (std::vector<std::string>{std::string("\xC0\x00", 2)}));
}

// Whatever the keepalive: one the broker got unchanged is served by the relay too when nothing
// of the browser's reaches the broker (it pinged only for browsers clamped down, so one that
// sent only refused packets within its keepalive was timed out by the broker).
TEST_F(RelayTest, BrokerIsPingedWhenNothingReachesItWhateverTheKeepalive) {
  connect(wire::kMqtt311, 60);
  EXPECT_EQ(endpoint_.stream->timer, std::chrono::milliseconds(15'000));
  for (int i = 0; i < 3; ++i) {
    from_browser(publish_packet(wire::kMqtt311, "sensors/denied", 0));
    endpoint_.handler->on_timer();
    EXPECT_TRUE(broker_packets().empty());
  }
  endpoint_.handler->on_timer();
  EXPECT_EQ(broker_packets(), (std::vector<std::string>{std::string("\xC0\x00", 2)}));
}

// A broker that takes the connection and never answers CONNECT: the browser is told the server
// is unavailable after kConnackTimeout (it waited for as long as the browser kept it open).
TEST_F(RelayTest, ABrokerThatDoesNotAnswerConnectInTimeIsUnavailable) {
  for (const std::uint8_t version : {wire::kMqtt311, wire::kMqtt5}) {
    SCOPED_TRACE(static_cast<int>(version));
    fresh_browser();
    start();
    from_browser(connect_packet(version, "dash"));
    EXPECT_EQ(endpoint_.stream->timer, std::chrono::milliseconds(kConnackTimeout));
    endpoint_.handler->on_timer();
    const auto got = browser_->take_packets();
    ASSERT_EQ(got.size(), 1u);
    std::string error;
    const auto connack = wire::parse_connack(got[0], version, error);
    ASSERT_TRUE(connack) << error;
    EXPECT_EQ(connack->code, version == wire::kMqtt5 ? wire::reason::kServerUnavailable
                                                     : wire::connack311::kServerUnavailable);
    ASSERT_TRUE(browser_->close_code);
    EXPECT_EQ(*browser_->close_code, CloseCode::kTryAgainLater);
    EXPECT_TRUE(endpoint_.stream->closed);
  }
  // Answered in time: the keepalive's ticks replace the timeout (a quarter of the keepalive).
  fresh_browser();
  connect(wire::kMqtt311, 60);
  EXPECT_EQ(endpoint_.stream->timer, std::chrono::milliseconds(15'000));
}

TEST_F(RelayTest, CleanDisconnectReachesTheBroker) {
  connect(wire::kMqtt311);
  from_browser(std::string("\xE0\x00", 2));
  EXPECT_EQ(broker_packets(), (std::vector<std::string>{std::string("\xE0\x00", 2)}));
  EXPECT_TRUE(endpoint_.stream->closed);
  EXPECT_EQ(*browser_->close_code, CloseCode::kNormal);
}

// A client silent for 1.5 times its keepalive is closed (MQTT 5: DISCONNECT 0x8D), without a
// DISCONNECT to the broker, which then publishes its will. It stayed open for good: the relay
// pinged the broker for it, and WebSocket pongs kept the connection from its idle_timeout.
TEST_F(RelayTest, AClientSilentForOneAndAHalfKeepalivesIsClosed) {
  route_.keepalive_min = std::chrono::seconds(1);
  for (const std::uint8_t version : {wire::kMqtt311, wire::kMqtt5}) {
    SCOPED_TRACE(static_cast<int>(version));
    fresh_browser();
    connect(version, 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(900));
    from_browser(std::string("\xC0\x00", 2));  // PINGREQ: the keepalive starts over
    std::this_thread::sleep_for(std::chrono::milliseconds(900));
    endpoint_.handler->on_timer();
    EXPECT_FALSE(browser_->close_code) << "0.9 s since its last packet";
    broker_packets();
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    endpoint_.handler->on_timer();
    ASSERT_TRUE(browser_->close_code) << "1.6 s since its last packet";
    EXPECT_EQ(*browser_->close_code, CloseCode::kGoingAway);
    const auto got = browser_->take_packets();
    if (version == wire::kMqtt5) {
      ASSERT_EQ(got.size(), 1u);
      std::string error;
      EXPECT_EQ(wire::parse_disconnect(got[0], wire::kMqtt5, error),
                wire::reason::kKeepAliveTimeout);
    } else {
      EXPECT_TRUE(got.empty());
    }
    EXPECT_TRUE(broker_packets().empty()) << "no DISCONNECT: the broker publishes the will";
    EXPECT_TRUE(endpoint_.stream->closed);
  }
}

// While we do not read the client (its queue is past the high-water mark: a slow reader catching
// up), its PINGREQs wait unread behind what it sent: that is no silence. It was closed with 0x8D
// and its will published, though it pinged every second. Read again, its keepalive starts over.
TEST_F(RelayTest, AClientWeStoppedReadingIsNotTimedOutForItsSilence) {
  route_.keepalive_min = std::chrono::seconds(1);
  connect(wire::kMqtt311, 1);
  browser_->next_send = SendResult::kQueuedOverHighWater;
  endpoint_.handler->on_data(publish_packet(wire::kMqtt311, "sensors/t", 0));
  ASSERT_TRUE(browser_->reading_paused);
  std::this_thread::sleep_for(std::chrono::milliseconds(1600));
  endpoint_.handler->on_timer();
  EXPECT_FALSE(browser_->close_code) << "1.6 s unread is not 1.6 s silent";
  browser_->next_send = SendResult::kQueued;
  relay_->client_drained();
  ASSERT_FALSE(browser_->reading_paused);
  endpoint_.handler->on_timer();
  EXPECT_FALSE(browser_->close_code) << "read again: its keepalive starts over";
  std::this_thread::sleep_for(std::chrono::milliseconds(1600));
  endpoint_.handler->on_timer();
  ASSERT_TRUE(browser_->close_code) << "read, and silent for 1.6 s";
  EXPECT_EQ(*browser_->close_code, CloseCode::kGoingAway);
}

// The core holds a client's reading itself while a frame to it is half written (it stopped
// reading in the middle of a large PUBLISH): its PINGREQs wait unread then too, and taking bytes
// of that frame is what shows it is alive. That time was counted as silence, and a client slowly
// taking one large delivery was closed with 0x8D. One that takes nothing more still is.
TEST_F(RelayTest, AClientTheCoreStoppedReadingMidFrameIsAliveWhileItTakesBytes) {
  route_.keepalive_min = std::chrono::seconds(1);
  connect(wire::kMqtt311, 1);
  for (int i = 0; i < 4; ++i) {  // 2 s held, taking bytes all along
    browser_->heard_while_reading_held = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    endpoint_.handler->on_timer();
    ASSERT_FALSE(browser_->close_code) << "held for " << (i + 1) * 500 << " ms";
  }
  // Still held, and taking nothing more: its socket died in the middle of the frame.
  browser_->heard_while_reading_held = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(900));
  endpoint_.handler->on_timer();
  EXPECT_FALSE(browser_->close_code) << "0.9 s since it took bytes";
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  endpoint_.handler->on_timer();
  ASSERT_TRUE(browser_->close_code) << "1.6 s since it took bytes";
  EXPECT_EQ(*browser_->close_code, CloseCode::kGoingAway);
}

// Bytes of a packet still arriving count as the client's: one uploading a large PUBLISH over a
// slow link sends no whole packet for longer than its keepalive, and was closed mid-upload.
TEST_F(RelayTest, AClientSendingOneLargePacketSlowlyIsNotTimedOut) {
  route_.keepalive_min = std::chrono::seconds(1);
  connect(wire::kMqtt311, 1);
  const std::string payload(3000, 'p');  // (the packet views it)
  wire::PublishPacket large;
  large.topic = "sensors/large";
  large.payload = payload;
  const std::string publish = wire::encode_publish(large, wire::kMqtt311);
  for (std::size_t at = 0; at < 4; ++at) {  // 4 pieces, 0.5 s apart: 2 s for one packet
    from_browser(publish.substr(at * 100, 100));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    endpoint_.handler->on_timer();
    ASSERT_FALSE(browser_->close_code) << "piece " << at;
  }
  from_browser(publish.substr(400));
  EXPECT_FALSE(browser_->close_code);
}

// A WebSocket that sends no CONNECT, or never finishes one, is closed once the route's
// mqtt_connect_timeout passed; one whose CONNECT came is left alone.
TEST(ConnectDeadlinesTest, AConnectionWithoutItsConnectInTimeIsClosed) {
  auto silent = std::make_shared<FakeBrowser>();
  auto connected = std::make_shared<FakeBrowser>();
  auto gone = std::make_shared<FakeBrowser>();
  {
    ConnectDeadlines deadlines(std::chrono::milliseconds(100));
    deadlines.watch(silent);
    deadlines.watch(connected)->store(true);
    deadlines.watch(gone);
    gone.reset();  // (closed and forgotten before its deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
  }  // (joins its thread: what it did is seen here)
  ASSERT_TRUE(silent->close_code);
  EXPECT_EQ(*silent->close_code, CloseCode::kPolicyViolation);
  EXPECT_NE(silent->close_reason.find("no MQTT CONNECT within 100 ms"), std::string::npos)
      << silent->close_reason;
  EXPECT_FALSE(connected->close_code);
}

}  // namespace
}  // namespace wsbridge::mqtt::testing
