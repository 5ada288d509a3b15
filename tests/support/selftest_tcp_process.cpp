// Self-test for the test-support library, part two (selftest_main.cpp has the framing and
// deflate): the client's handshake and HTTP reading against an in-process fake server over
// loopback TCP, free ports, temporary files and child processes.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <functional>
#include <thread>

#include "support/process.hpp"
#include "support/ws_test_client.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class FakeServer {
 public:
  using Handler = std::function<void(TcpConn&, const std::string& request)>;
  explicit FakeServer(Handler handler) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_fd_, 4) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("FakeServer: bind/listen failed");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, handler = std::move(handler)] {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      TcpConn conn = TcpConn::adopt(fd);
      const auto deadline = Clock::now() + 2s;
      while (conn.buffer().find("\r\n\r\n") == std::string::npos) {
        if (conn.read_some(deadline) != TcpConn::ReadStatus::kData) return;
      }
      request_ = conn.buffer();
      conn.buffer().clear();
      handler(conn, request_);
    });
  }
  ~FakeServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);  // unblocks accept if no client came
    thread_.join();
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  // Only valid after the client got its answer (the handler ran).
  const std::string& request() const { return request_; }

 private:
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::string request_;
  std::thread thread_;
};

// Value of the first request header called `name` (exact case), without streams: libstdc++'s
// streambuf trips -Wnull-dereference at -O2, and the project builds tests with that warning.
std::string header_value(const std::string& request, const std::string& name) {
  const size_t at = request.find("\r\n" + name + ":");
  if (at == std::string::npos) return {};
  const size_t begin = request.find_first_not_of(' ', at + name.size() + 3);
  return request.substr(begin, request.find("\r\n", begin) - begin);
}

std::string read_file(const std::string& path) {
  std::string out;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

TEST(Handshake, SucceedsAndKeepsBytesAfterTheHead) {
  FakeServer server([](TcpConn& conn, const std::string& req) {
    const std::string key = header_value(req, "Sec-WebSocket-Key");
    // The first frame travels in the same write as the 101 head.
    conn.send_all(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
        websocket_accept_key(key) +
        "\r\nSec-WebSocket-Extensions: permessage-deflate; "
        "client_no_context_takeover; server_max_window_bits=10\r\n\r\n" +
        encode_frame(Opcode::kText, "welcome"));
    conn.wait_closed(2s);
  });
  ClientOptions opts;
  opts.port = server.port();
  opts.path = "/chat?x=1";
  opts.offer_deflate = true;
  opts.extra_headers = {{"Origin", "http://example.test"}};
  WsClient client = WsClient::connect(opts);
  EXPECT_EQ(client.handshake_response().status, 101);
  EXPECT_EQ(client.handshake_response().header("sec-websocket-accept"),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  ASSERT_TRUE(client.deflate_negotiated());
  EXPECT_TRUE(client.deflate_params()->client_no_context_takeover);
  EXPECT_EQ(client.deflate_params()->server_max_window_bits, 10);
  EXPECT_EQ(client.read_message().data, "welcome");
  client.tcp().close();

  const std::string& req = server.request();
  EXPECT_EQ(req.rfind("GET /chat?x=1 HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_EQ(header_value(req, "Host"), "127.0.0.1:" + std::to_string(opts.port));
  EXPECT_EQ(header_value(req, "Origin"), "http://example.test");
  EXPECT_EQ(header_value(req, "Sec-WebSocket-Version"), "13");
  EXPECT_EQ(header_value(req, "Sec-WebSocket-Extensions"),
            "permessage-deflate; client_max_window_bits");
}

TEST(Handshake, WrongAcceptThrows) {
  FakeServer server([](TcpConn& conn, const std::string&) {
    conn.send_all(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n");
    conn.wait_closed(2s);
  });
  ClientOptions opts;
  opts.port = server.port();
  try {
    WsClient::connect(opts);
    FAIL() << "expected HandshakeError";
  } catch (const HandshakeError& e) {
    EXPECT_EQ(e.response().status, 101);
    EXPECT_NE(std::string(e.what()).find("Sec-WebSocket-Accept"), std::string::npos) << e.what();
  }
}

TEST(Handshake, UnofferedExtensionThrows) {
  FakeServer server([](TcpConn& conn, const std::string& req) {
    conn.send_all(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
        websocket_accept_key(header_value(req, "Sec-WebSocket-Key")) +
        "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n");
    conn.wait_closed(2s);
  });
  ClientOptions opts;
  opts.port = server.port();
  EXPECT_THROW(WsClient::connect(opts), HandshakeError);
}

TEST(Handshake, RejectionCarriesResponse) {
  FakeServer server([](TcpConn& conn, const std::string&) {
    conn.send_all("HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nX-Why: origin\r\n\r\nforbidden");
    conn.wait_closed(2s);
  });
  ClientOptions opts;
  opts.port = server.port();
  opts.key = "";  // header omitted
  try {
    WsClient::connect(opts);
    FAIL() << "expected HandshakeError";
  } catch (const HandshakeError& e) {
    EXPECT_EQ(e.response().status, 403);
    EXPECT_EQ(e.response().reason, "Forbidden");
    EXPECT_EQ(e.response().body, "forbidden");
    EXPECT_EQ(e.response().header("x-WHY"), "origin");
  }
  EXPECT_EQ(server.request().find("Sec-WebSocket-Key"), std::string::npos);
}

TEST(Http, GetWithChunkedAndCloseDelimitedBodies) {
  {
    FakeServer server([](TcpConn& conn, const std::string&) {
      conn.send_all(
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n");
      conn.wait_closed(2s);
    });
    const HttpResponse r = http_get("127.0.0.1", server.port(), "/health", {{"X-Test", "1"}});
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "hello, world");
    EXPECT_NE(server.request().find("Connection: close\r\n"), std::string::npos);
    EXPECT_NE(server.request().find("X-Test: 1\r\n"), std::string::npos);
  }
  {
    FakeServer server([](TcpConn& conn, const std::string&) {
      conn.send_all("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close");
      conn.close();
    });
    EXPECT_EQ(http_get("127.0.0.1", server.port(), "/").body, "until close");
  }
  {
    FakeServer server([](TcpConn& conn, const std::string&) {
      conn.send_all("HTTP/1.1 204 No Content\r\n\r\n");
      conn.wait_closed(2s);
    });
    EXPECT_EQ(http_get("127.0.0.1", server.port(), "/").status, 204);
  }
}

TEST(Ports, FreePortIsBindableAndWaitPortOpenWorks) {
  const uint16_t port = free_tcp_port();
  EXPECT_GT(port, 0);
  // Nothing listens there: fails fast-ish and within the timeout.
  const auto start = Clock::now();
  EXPECT_FALSE(wait_port_open("127.0.0.1", port, 200ms));
  EXPECT_LT(Clock::now() - start, 1s);
  EXPECT_THROW(TcpConn::connect("127.0.0.1", port, 200ms), std::runtime_error);

  FakeServer server([](TcpConn& conn, const std::string&) { conn.wait_closed(1s); });
  EXPECT_TRUE(wait_port_open("127.0.0.1", server.port(), 1s));
}

TEST(TempFiles, WrittenUnderOneDirectoryWithUniqueNames) {
  const std::string a = write_temp_file("proxy.yaml", "a: 1\n");
  const std::string b = write_temp_file("proxy.yaml", "b: 2\n");
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind(temp_dir() + "/", 0), 0u);
  EXPECT_EQ(b.substr(b.size() - 5), ".yaml");
  EXPECT_EQ(read_file(b), "b: 2\n");
}

TEST(Process, CapturesOutputAndExitCode) {
  auto p = ChildProcess::spawn({"/bin/sh", "-c", "echo hello; echo oops >&2; read x; exit 3"},
                               {"WSB_SELFTEST=1"});
  EXPECT_TRUE(p.wait_for_output("hello", 2s));
  EXPECT_EQ(p.wait_exit(2s), 3);  // `read` got EOF from /dev/null
  EXPECT_NE(p.output().find("oops"), std::string::npos);
  EXPECT_FALSE(p.running());
  EXPECT_FALSE(p.wait_for_output("never printed", 100ms));
}

TEST(Process, EnvironmentAndSignals) {
  auto p = ChildProcess::spawn({"sh", "-c", "echo val=$WSB_X; exec sleep 30"}, {"WSB_X=42"});
  EXPECT_TRUE(p.wait_for_output("val=42", 2s)) << p.output();
  EXPECT_TRUE(p.running());
  EXPECT_FALSE(p.wait_exit(50ms).has_value());
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait_exit(2s), 128 + SIGTERM);
  p.signal(SIGTERM);  // reaped: must be a harmless no-op
}

TEST(Process, WaitForOutputStopsWhenChildExits) {
  auto p = ChildProcess::spawn({"sh", "-c", "echo bye"});
  const auto start = Clock::now();
  EXPECT_FALSE(p.wait_for_output("listening", 5s));
  EXPECT_LT(Clock::now() - start, 2s);
}

TEST(Process, ExecFailureThrowsAndDestructorKills) {
  EXPECT_THROW(ChildProcess::spawn({"/nonexistent/wsbridge-binary"}), std::runtime_error);
  const auto start = Clock::now();
  int pid = 0;
  {
    auto p = ChildProcess::spawn({"sleep", "30"});
    pid = p.pid();
    ChildProcess moved = std::move(p);  // moved-from object must be safe to destroy
    EXPECT_TRUE(moved.running());
  }
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_NE(::kill(pid, 0), 0);  // reaped, so gone
}

}  // namespace
}  // namespace wsbridge::testing
