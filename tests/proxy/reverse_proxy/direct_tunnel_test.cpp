// DirectTunnel relaying between two socket pairs on a real EventLoop (libev on epoll): bytes both
// ways in order, back-pressure, the end after a FIN with the last bytes delivered, errors, and the
// idle timeout.
#include "reverse_proxy/direct_tunnel.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "server/event_loop.hpp"

namespace wsbridge::reverse_proxy {
namespace {

using namespace std::chrono_literals;

struct Ended {
  std::string by;
  std::string why;
};

class Recorder final : public DirectTunnel::Owner {
 public:
  void direct_tunnel_ended(std::string_view by, std::string_view why) override {
    ended = Ended{std::string(by), std::string(why)};
  }
  std::optional<Ended> ended;
};

void set_nonblocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// The browser's end (client_peer) and the backend's (backend_peer) of two socket pairs whose other
// ends the tunnel relays between, on a loop bound to this thread.
class DirectTunnelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int client[2];
    int backend[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, client), 0);
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, backend), 0);
    client_peer_ = client[0];
    client_side_ = client[1];
    backend_peer_ = backend[0];
    backend_side_ = backend[1];
    set_nonblocking(client_peer_);
    set_nonblocking(backend_peer_);
    loop_.bind_to_this_thread();
    // run_once() waits for an event: a ticking timer bounds each wait.
    ev_timer_init(
        &tick_, [](struct ev_loop*, ev_timer*, int) {}, 0.01, 0.01);
    ev_timer_start(loop_.ev(), &tick_);
  }
  void TearDown() override {
    tunnel_.reset();
    ev_timer_stop(loop_.ev(), &tick_);
    for (int fd : {client_peer_, backend_peer_}) {
      if (fd >= 0) ::close(fd);
    }
  }

  void start(std::chrono::milliseconds idle = 0ms,
             std::optional<std::chrono::milliseconds> lifetime = std::nullopt) {
    tunnel_ = std::make_unique<DirectTunnel>(client_side_, backend_side_, idle, lifetime, owner_);
    ASSERT_TRUE(tunnel_->start());
  }
  // Turns the loop until `done` or `limit` passed; whether `done` held.
  bool turn_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      loop_.run_once();
    }
    return true;
  }
  static std::string read_available(int fd) {
    std::string out;
    char buffer[65536];
    for (;;) {
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      out.append(buffer, static_cast<std::size_t>(n));
    }
    return out;
  }
  // Writes what the socket takes of `bytes` from `offset` on.
  static void write_some(int fd, const std::string& bytes, std::size_t& offset) {
    while (offset < bytes.size()) {
      const ssize_t n = ::send(fd, bytes.data() + offset, bytes.size() - offset, MSG_NOSIGNAL);
      if (n <= 0) break;
      offset += static_cast<std::size_t>(n);
    }
  }
  static std::string pattern(std::size_t size, unsigned seed) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 131 + seed) & 0xff);
    return s;
  }

  EventLoop loop_;
  ev_timer tick_{};
  int client_peer_ = -1;
  int client_side_ = -1;
  int backend_peer_ = -1;
  int backend_side_ = -1;
  Recorder owner_;
  std::unique_ptr<DirectTunnel> tunnel_;
};

TEST_F(DirectTunnelTest, RelaysBothWaysInOrderAndCountsTheBytes) {
  start();
  const std::string up = pattern(3 * 1024 * 1024 + 17, 1);
  const std::string down = pattern(2 * 1024 * 1024 + 5, 2);
  std::size_t up_sent = 0;
  std::size_t down_sent = 0;
  std::string up_got;
  std::string down_got;
  ASSERT_TRUE(turn_until([&] {
    write_some(client_peer_, up, up_sent);
    write_some(backend_peer_, down, down_sent);
    up_got += read_available(backend_peer_);
    down_got += read_available(client_peer_);
    return up_got.size() >= up.size() && down_got.size() >= down.size();
  }));
  EXPECT_TRUE(up_got == up) << "browser -> backend bytes altered or reordered";
  EXPECT_TRUE(down_got == down) << "backend -> browser bytes altered or reordered";
  EXPECT_EQ(tunnel_->bytes_up(), up.size());
  EXPECT_EQ(tunnel_->bytes_down(), down.size());
  EXPECT_FALSE(owner_.ended);
}

TEST_F(DirectTunnelTest, ABackendThatReadsNothingStopsTheReadingOfTheBrowser) {
  start();
  const std::string flood = pattern(64 * 1024 * 1024, 3);
  std::size_t sent = 0;
  // Many turns while the backend reads nothing: the browser's writes stop being taken.
  for (int i = 0; i < 200; ++i) {
    write_some(client_peer_, flood, sent);
    loop_.run_once();
  }
  const std::size_t stalled_at = sent;
  for (int i = 0; i < 50; ++i) {
    write_some(client_peer_, flood, sent);
    loop_.run_once();
  }
  EXPECT_EQ(sent, stalled_at) << "the tunnel kept reading the browser";
  EXPECT_LT(sent, 16u * 1024 * 1024) << "more than the socket buffers and one read held";
  // The backend reads again: all of it comes, in order, and the rest of the flood follows.
  std::string got;
  ASSERT_TRUE(turn_until(
      [&] {
        write_some(client_peer_, flood, sent);
        got += read_available(backend_peer_);
        return got.size() >= flood.size();
      },
      20s));
  EXPECT_TRUE(got == flood);
}

TEST_F(DirectTunnelTest, AFinEndsTheTunnelOnceWhatCameBeforeItWentOut) {
  start();
  const std::string last = pattern(8 * 1024 * 1024, 4);  // more than the buffers: some waits
  std::size_t sent = 0;
  for (int i = 0; i < 20; ++i) {  // the backend reads nothing yet: the tunnel holds some
    write_some(client_peer_, last, sent);
    loop_.run_once();
  }
  std::string got;
  bool fin_sent = false;
  ASSERT_TRUE(turn_until(
      [&] {
        write_some(client_peer_, last, sent);
        if (sent == last.size() && !fin_sent) {
          ::shutdown(client_peer_, SHUT_WR);
          fin_sent = true;
        }
        got += read_available(backend_peer_);
        return owner_.ended.has_value();
      },
      20s));
  got += read_available(backend_peer_);
  EXPECT_TRUE(got == last) << got.size() << " of " << last.size() << " bytes before the end";
  EXPECT_EQ(owner_.ended->by, "client");
  EXPECT_EQ(owner_.ended->why, "connection closed");
  char byte = 0;
  EXPECT_EQ(::recv(backend_peer_, &byte, 1, 0), 0) << "the backend's socket was not closed";
}

TEST_F(DirectTunnelTest, ABackendGoneEndsItAndClosesTheBrowsersSocket) {
  start();
  ::close(backend_peer_);
  backend_peer_ = -1;
  ASSERT_TRUE(turn_until([&] { return owner_.ended.has_value(); }));
  EXPECT_EQ(owner_.ended->by, "backend");
  char byte = 0;
  ASSERT_TRUE(turn_until([&] { return ::recv(client_peer_, &byte, 1, 0) == 0; }));
}

TEST_F(DirectTunnelTest, IdleTimeoutEndsASilentTunnelNotABusyOne) {
  start(150ms);
  const auto began = std::chrono::steady_clock::now();
  // Busy for 450 ms: a byte every 30 ms.
  std::string got;
  auto last_byte = began;
  while (std::chrono::steady_clock::now() - began < 450ms) {
    ASSERT_EQ(::send(client_peer_, "x", 1, MSG_NOSIGNAL), 1);
    last_byte = std::chrono::steady_clock::now();
    const auto next = std::chrono::steady_clock::now() + 30ms;
    while (std::chrono::steady_clock::now() < next) loop_.run_once();
    got += read_available(backend_peer_);
  }
  EXPECT_FALSE(owner_.ended) << "closed while busy";
  EXPECT_GE(got.size(), 10u);
  ASSERT_TRUE(turn_until([&] { return owner_.ended.has_value(); }, 3s));
  const auto took = std::chrono::steady_clock::now() - last_byte;  // (silent since)
  EXPECT_EQ(owner_.ended->by, "wsbridge");
  EXPECT_EQ(owner_.ended->why, "websocket_idle_timeout");
  EXPECT_GE(took, 140ms);
  EXPECT_LT(took, 1500ms);
}

// The token that opened the tunnel expires: it ends then however busy it is, as a WebSocket
// route's connection does.
TEST_F(DirectTunnelTest, ItEndsWhenItsLifetimeRunsOutWhileBusy) {
  start(150ms, 300ms);
  const auto began = std::chrono::steady_clock::now();
  while (!owner_.ended && std::chrono::steady_clock::now() - began < 3s) {
    ASSERT_EQ(::send(client_peer_, "x", 1, MSG_NOSIGNAL), 1);
    const auto next = std::chrono::steady_clock::now() + 30ms;
    while (!owner_.ended && std::chrono::steady_clock::now() < next) loop_.run_once();
    read_available(backend_peer_);
  }
  const auto took = std::chrono::steady_clock::now() - began;
  ASSERT_TRUE(owner_.ended.has_value());
  EXPECT_EQ(owner_.ended->by, "wsbridge");
  EXPECT_EQ(owner_.ended->why, "token expired");
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 1500ms);
  char byte;
  EXPECT_LE(::recv(client_peer_, &byte, 1, 0), 0) << "the browser's socket is still open";
}

// Without an idle timeout, the lifetime alone arms the timer.
TEST_F(DirectTunnelTest, ALifetimeWithoutAnIdleTimeoutEndsASilentTunnel) {
  start(0ms, 100ms);
  ASSERT_TRUE(turn_until([&] { return owner_.ended.has_value(); }, 3s));
  EXPECT_EQ(owner_.ended->why, "token expired");
}

}  // namespace
}  // namespace wsbridge::reverse_proxy
