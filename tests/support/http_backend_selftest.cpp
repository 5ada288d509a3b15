// Self-test of the HTTP test backend (tests/support/http_backend.py) and its C++ wrapper, using
// plain sockets only, so the HTTP adapter's tests can rely on what the backend reports.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "support/eventually.hpp"
#include "support/http_backend.hpp"
#include "support/process.hpp"
#include "support/ws_test_client.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using wsbridge::testing::ChildProcess;
using wsbridge::testing::http_request;
using wsbridge::testing::HttpBackend;
using wsbridge::testing::HttpResult;
using wsbridge::testing::TcpConn;

namespace {

std::string get_request(const std::string& path, const std::string& extra = {}) {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "\r\n";
}

// Polls stats() until stats()[key] == value (the backend updates "open" asynchronously).
bool wait_stat(HttpBackend& backend, const std::string& key, int value,
               std::chrono::milliseconds timeout = 3s) {
  return wsbridge::testing::eventually([&] { return backend.stats()[key] == value; }, timeout,
                                       10ms);
}

}  // namespace

class HttpBackendTest : public ::testing::Test {
 protected:
  HttpBackend backend;
};

TEST_F(HttpBackendTest, StartsOnAFreshPortAndReportsIt) {
  EXPECT_NE(backend.port(), 0);
  EXPECT_NE(backend.control_port(), 0);
  EXPECT_NE(backend.port(), backend.control_port());
  EXPECT_EQ(backend.base_url(), "http://127.0.0.1:" + std::to_string(backend.port()));
  EXPECT_NE(backend.output().find("listening on 127.0.0.1:" + std::to_string(backend.port())),
            std::string::npos);
  EXPECT_EQ(backend.stats(),
            json({{"connections", 0}, {"requests", 0}, {"accepted", 0}, {"open", 0}}));
}

TEST_F(HttpBackendTest, EchoReturnsBodyTypeMethodPathAndTestHeader) {
  HttpResult r = http_request(backend.port(), "PUT", "/echo/x?y=1", "hello",
                              {{"Content-Type", "text/x-test"}, {"X-Test", "abc"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(r.headers["content-type"], "text/x-test");
  EXPECT_EQ(r.headers["x-echo-method"], "PUT");
  EXPECT_EQ(r.headers["x-echo-path"], "/echo/x?y=1");
  EXPECT_EQ(r.headers["x-test-echo"], "abc");

  r = http_request(backend.port(), "GET", "/echo");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.headers.count("content-type"), 0u);
  EXPECT_EQ(r.headers.count("x-test-echo"), 0u);

  // A chunked request body is de-chunked by the backend.
  r = http_request(backend.port(), "POST", "/echo", "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                   {{"Transfer-Encoding", "chunked"}});
  EXPECT_EQ(r.body, "abcde");
}

TEST_F(HttpBackendTest, JsonStatusSlowBigChunkedAndNotFound) {
  HttpResult r = http_request(backend.port(), "GET", "/json/a/b?c=d");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_EQ(json::parse(r.body), json({{"path", "/json/a/b?c=d"}, {"method", "GET"}}));

  r = http_request(backend.port(), "POST", "/status/418");
  EXPECT_EQ(r.status, 418);
  EXPECT_EQ(json::parse(r.body), json({{"status", 418}}));
  r = http_request(backend.port(), "GET", "/status/204");
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.body, "");

  const auto t0 = std::chrono::steady_clock::now();
  r = http_request(backend.port(), "GET", "/slow/150");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 150ms);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "slow");

  r = http_request(backend.port(), "GET", "/big/300000");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-length"], "300000");
  EXPECT_EQ(r.body, std::string(300000, 'x'));
  r = http_request(backend.port(), "HEAD", "/big/300000");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-length"], "300000");
  EXPECT_EQ(r.body, "");

  r = http_request(backend.port(), "GET", "/chunked/3");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["transfer-encoding"], "chunked");
  EXPECT_EQ(r.body, "chunk0\nchunk1\nchunk2\n");

  r = http_request(backend.port(), "GET", "/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(json::parse(r.body)["path"], "/nope");
}

TEST_F(HttpBackendTest, CountsConnectionsAndRequestsOverKeepAlive) {
  {
    // Two sequential requests on one connection, then two pipelined ones on another.
    TcpConn conn = TcpConn::connect("127.0.0.1", backend.port());
    conn.send_all(get_request("/json/1"));
    EXPECT_EQ(conn.read_http_response().status, 200);
    conn.send_all(get_request("/json/2"));
    EXPECT_EQ(conn.read_http_response().status, 200);
    EXPECT_EQ(backend.stats()["connections"], 1);
    EXPECT_EQ(backend.stats()["requests"], 2);

    TcpConn pipelined = TcpConn::connect("127.0.0.1", backend.port());
    pipelined.send_all(get_request("/json/3") + get_request("/status/201"));
    EXPECT_EQ(json::parse(pipelined.read_http_response().body)["path"], "/json/3");
    EXPECT_EQ(pipelined.read_http_response().status, 201);
  }
  json stats = backend.stats();
  EXPECT_EQ(stats["connections"], 2);
  EXPECT_EQ(stats["requests"], 4);
  EXPECT_EQ(stats["accepted"], 2);

  json reqs = backend.requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[0]["path"], "/json/1");
  EXPECT_EQ(reqs[0]["connection"], 1);
  EXPECT_EQ(reqs[1]["connection"], 1);
  EXPECT_EQ(reqs[2]["connection"], 2);
  EXPECT_EQ(reqs[3]["connection"], 2);
  EXPECT_EQ(reqs[3]["path"], "/status/201");
  EXPECT_EQ(reqs[0]["headers"]["host"], "127.0.0.1");

  // Control calls on the main port are neither recorded nor counted as connections (only as
  // accepted TCP connections).
  EXPECT_EQ(http_request(backend.port(), "GET", "/_stats").status, 200);
  stats = backend.stats();
  EXPECT_EQ(stats["requests"], 4);
  EXPECT_EQ(stats["connections"], 2);
  EXPECT_EQ(stats["accepted"], 3);

  // After a reset, a connection opened before it gets a new number when it is used again.
  TcpConn conn = TcpConn::connect("127.0.0.1", backend.port());
  conn.send_all(get_request("/json/before"));
  EXPECT_EQ(conn.read_http_response().status, 200);
  backend.reset();
  EXPECT_EQ(backend.stats()["requests"], 0);
  EXPECT_EQ(backend.requests(), json::array());
  conn.send_all(get_request("/json/after"));
  EXPECT_EQ(conn.read_http_response().status, 200);
  stats = backend.stats();
  EXPECT_EQ(stats["connections"], 1);
  EXPECT_EQ(stats["requests"], 1);
  EXPECT_EQ(stats["accepted"], 0);  // accepted before the reset
  // "open" is not reset; the backend notices the closed connections asynchronously.
  EXPECT_TRUE(wait_stat(backend, "open", 1));
  EXPECT_EQ(backend.requests()[0]["connection"], 1);
}

TEST_F(HttpBackendTest, RecordsMethodPathHeadersAndBody) {
  const std::string binary("\x00\xff\x01", 3);
  http_request(backend.port(), "POST", "/echo/rec?q=1", "{\"a\":1}",
               {{"Content-Type", "application/json"}, {"X-Multi", "1"}, {"X-Multi", "2"}});
  http_request(backend.port(), "PATCH", "/echo/bin", binary);
  json reqs = backend.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0]["method"], "POST");
  EXPECT_EQ(reqs[0]["path"], "/echo/rec?q=1");
  EXPECT_EQ(reqs[0]["headers"]["content-type"], "application/json");
  EXPECT_EQ(reqs[0]["headers"]["x-multi"], "1, 2");
  EXPECT_EQ(reqs[0]["body"], "{\"a\":1}");
  EXPECT_EQ(reqs[1]["method"], "PATCH");
  EXPECT_EQ(reqs[1]["body_base64"], "AP8B");
  EXPECT_EQ(reqs[0]["connection"], 1);
  EXPECT_EQ(reqs[1]["connection"], 2);  // http_request uses Connection: close
}

TEST_F(HttpBackendTest, DieClosesInTheMiddleOfTheBody) {
  for (const std::string path : {"/die", "/die/rst"}) {
    SCOPED_TRACE(path);
    TcpConn conn = TcpConn::connect("127.0.0.1", backend.port());
    conn.send_all(get_request(path));
    const std::string got = conn.read_until_close(3s);
    ASSERT_TRUE(conn.eof());
    const size_t head_end = got.find("\r\n\r\n");
    ASSERT_NE(head_end, std::string::npos) << got;
    EXPECT_NE(got.find("Content-Length: 1000\r\n"), std::string::npos) << got;
    if (path == "/die") {
      EXPECT_EQ(got.substr(head_end + 4), std::string(10, 'x'));
    }
    EXPECT_LT(got.size() - head_end - 4, 1000u);
    EXPECT_THROW(http_request(backend.port(), "GET", path, {}, {}, 3s), std::runtime_error);
  }
  EXPECT_EQ(backend.stats()["requests"], 4);
}

TEST_F(HttpBackendTest, HangNeverAnswersButBlocksNothing) {
  TcpConn hanging = TcpConn::connect("127.0.0.1", backend.port());
  hanging.send_all(get_request("/hang"));
  ASSERT_TRUE(backend.wait_for_requests(1, 3s));
  EXPECT_EQ(http_request(backend.port(), "GET", "/json/meanwhile").status, 200);
  EXPECT_FALSE(hanging.wait_closed(200ms));
  EXPECT_TRUE(hanging.buffer().empty());
  // The /json connection goes away asynchronously; the hanging one stays.
  EXPECT_TRUE(wait_stat(backend, "open", 1));
  hanging.close();  // the backend notices and drops the connection
  EXPECT_TRUE(wait_stat(backend, "open", 0));
}

TEST_F(HttpBackendTest, ConnectHookIsConfigurable) {
  HttpResult r = http_request(backend.port(), "POST", "/hook/connect", "{\"user\":\"u\"}",
                              {{"Content-Type", "application/json"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body), json({{"claims", {{"role", "tested"}}}}));

  backend.configure({{"connect_status", 403}, {"connect_body", {{"error", "denied"}}}});
  r = http_request(backend.port(), "POST", "/hook/connect");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(json::parse(r.body), json({{"error", "denied"}}));

  backend.configure(
      {{"connect_status", 200}, {"connect_body", nullptr}, {"connect_delay_ms", 150}});
  const auto t0 = std::chrono::steady_clock::now();
  r = http_request(backend.port(), "POST", "/hook/connect");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 150ms);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "");

  backend.configure({{"connect_body", "not json"}, {"connect_delay_ms", 0}});
  r = http_request(backend.port(), "POST", "/hook/connect");
  EXPECT_EQ(r.body, "not json");
  EXPECT_EQ(r.headers["content-type"], "text/plain");

  EXPECT_THROW(backend.configure({{"no_such_key", 1}}), std::runtime_error);

  r = http_request(backend.port(), "POST", "/hook/disconnect", "{\"user\":\"u\"}");
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(http_request(backend.port(), "GET", "/hook/connect").status, 405);

  json reqs = backend.requests();
  ASSERT_EQ(reqs.size(), 6u);
  EXPECT_EQ(reqs[0]["path"], "/hook/connect");
  EXPECT_EQ(reqs[0]["body"], "{\"user\":\"u\"}");
  EXPECT_EQ(reqs[4]["path"], "/hook/disconnect");
}

TEST_F(HttpBackendTest, KillAndRestartOnTheSamePort) {
  const uint16_t port = backend.port();
  http_request(port, "GET", "/json/x");
  TcpConn idle = TcpConn::connect("127.0.0.1", port);
  backend.kill();
  EXPECT_FALSE(backend.running());
  EXPECT_TRUE(idle.wait_closed(2s));
  EXPECT_THROW(http_request(port, "GET", "/json/x", {}, {}, 1s), std::runtime_error);

  backend.start();
  EXPECT_EQ(backend.port(), port);
  EXPECT_EQ(backend.stats()["requests"], 0);
  EXPECT_EQ(http_request(port, "GET", "/json/y").status, 200);
  EXPECT_EQ(backend.stats()["requests"], 1);
  EXPECT_THROW(backend.start(), std::runtime_error);
}

TEST_F(HttpBackendTest, SigtermExitsCleanlyEvenWithAHangingRequest) {
  TcpConn hanging = TcpConn::connect("127.0.0.1", backend.port());
  hanging.send_all(get_request("/hang"));
  ASSERT_TRUE(backend.wait_for_requests(1, 3s));
  EXPECT_EQ(backend.stop(3s), 0) << backend.output();
  EXPECT_TRUE(hanging.wait_closed(2s));
}

TEST(HttpBackendTlsTest, ServesHttpsWithAGeneratedCertificate) {
  HttpBackend backend(true);
  EXPECT_EQ(backend.base_url(), "https://127.0.0.1:" + std::to_string(backend.port()));
  ASSERT_FALSE(backend.ca_file().empty());
  // An independent TLS client that verifies the chain and the IP address against the CA.
  const std::string client =
      "import ssl, sys, urllib.request\n"
      "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
      "print(urllib.request.urlopen(sys.argv[2], context=ctx, timeout=5).read().decode())\n";
  ChildProcess py = ChildProcess::spawn(
      {"/usr/bin/python3", "-c", client, backend.ca_file(), backend.base_url() + "/json/tls"});
  ASSERT_EQ(py.wait_exit(10s), 0) << py.output() << backend.output();
  EXPECT_NE(py.output().find("\"path\": \"/json/tls\""), std::string::npos) << py.output();
  // Control calls go over the plain control port.
  EXPECT_EQ(backend.stats()["requests"], 1);
  EXPECT_EQ(backend.requests()[0]["path"], "/json/tls");
  // Plain HTTP on the TLS port gets no HTTP answer.
  EXPECT_THROW(http_request(backend.port(), "GET", "/json/x", {}, {}, 2s), std::runtime_error);
}
