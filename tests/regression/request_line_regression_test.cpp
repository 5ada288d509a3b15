// Request lines and Upgrade headers libwebsockets 4.1.6 mishandles, over ws:// and wss:// (the
// recv guard reads both: head_follower.cpp, request_line.hpp). Each case failed before the fix:
// an encoded NUL closed the connection without an answer; an encoded LF ended lws' request line
// (the rest of the target became a header only lws saw); CONNECT turned it raw and left it
// hanging until the handshake timeout; "Upgrade: h2c" (curl --http2, Java's HttpClient on
// http:// URLs) closed it, where the request is to be served over HTTP/1.1; an unknown method or
// a target that is not a path, or an Upgrade to another protocol, got an HTML "403 Forbidden";
// HTTP/1.1 without a Host, or with two,
// was served; an HTTP/1.0 request was upgraded to a WebSocket.
#include <gtest/gtest.h>

#include "integration/wsbridge_instance.hpp"
#include "support/tls_config.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

enum class Scheme { kHttp, kHttps };

// The rest of a WebSocket upgrade's head after its Upgrade and Connection lines.
constexpr std::string_view kKeyAndVersion =
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

// One listener, TLS or not, and an echo route.
std::string echo_server(bool tls) {
  return R"(
[limits]
handshake_timeout = "5s"
[[listeners]]
address = "127.0.0.1"
port = ${PORT}
)" + (tls ? tls_table(TestPki::get().server) : std::string()) +
         R"(
[[routes]]
path = "/echo"
adapter = "echo"
[[routes]]
path = "/chat"
adapter = "echo"
subprotocols = ["chat.v1"]
)";
}

class RequestLines : public ::testing::TestWithParam<Scheme> {
 protected:
  static bool tls() { return GetParam() == Scheme::kHttps; }
  void SetUp() override { server_.emplace(echo_server(tls())); }
  TcpConn raw() const {
    return TcpConn::connect("127.0.0.1", server_->port,
                            tls() ? std::optional(trust_test_ca()) : std::nullopt);
  }
  // Sends `request`; the answer must come at once (well inside the handshake timeout).
  HttpResponse answer(const std::string& request, TcpConn& conn) const {
    conn.send_all(request);
    return conn.read_http_response(2s);
  }
  void expect_refused(const std::string& request, int status, const std::string& reason) {
    TcpConn conn = raw();
    const HttpResponse r = answer(request, conn);
    EXPECT_EQ(r.status, status) << request;
    EXPECT_EQ(r.body, reason + "\n") << request;
    EXPECT_EQ(r.header("Connection").value_or(""), "close") << request;
    EXPECT_TRUE(conn.wait_closed(2s)) << "kept open after: " << request;
  }
  std::optional<WsbridgeInstance> server_;
};

TEST_P(RequestLines, TargetsLwsWouldDropOrMisreadGet400) {
  expect_refused("GET /healthz?a=%00 HTTP/1.1\r\nHost: h\r\n\r\n", 400,
                 "an encoded NUL (%00) in the request target");
  expect_refused("GET /echo%00.html HTTP/1.1\r\nHost: h\r\n\r\n", 400,
                 "an encoded NUL (%00) in the request target");
  // lws ended its request line at the decoded LF and read "Content-Length:5 HTTP/1.1" as a
  // header: a body only lws expected.
  expect_refused("GET /healthz?a=%0AContent-Length:5 HTTP/1.1\r\nHost: h\r\n\r\n", 400,
                 "an encoded CR or LF (%0D, %0A) in the request target");
  expect_refused("GET /healthz?a=%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400,
                 "a '%' in the request target that does not start two hex digits");
  expect_refused("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400,
                 "a request target that is not a path (origin-form)");
  expect_refused("GET /healthz\r\nHost: h\r\n\r\n", 400,
                 "a request line without an HTTP version (HTTP/0.9 is not served)");
  expect_refused("GET /healthz HTTP/2.0\r\nHost: h\r\n\r\n", 505,
                 "only HTTP/1.0 and 1.1 are served");
}

// lws 4.1.6 ends a value at a bare CR (an Origin of "https://good.example\r.evil" was checked
// as the first part) and keeps NULs; it dropped the connection unanswered when a head's known
// lines and query arguments ran out of its slots (91 "Accept: a" lines, 1.1 KB).
TEST_P(RequestLines, BareCrNulAndTooManyFieldsAreRefused) {
  expect_refused("GET /healthz HTTP/1.1\r\nHost: h\r\nOrigin: https://a.example\r.evil\r\n\r\n",
                 400, "a malformed request head");
  expect_refused(std::string("GET /healthz HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n", 44), 400,
                 "a malformed request head");
  std::string many = "GET /healthz HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 91; ++i) many += "Accept: a\r\n";
  expect_refused(many + "\r\n", 431, "over 88 header lines and query arguments together");
  std::string args = "GET /healthz?a=1";
  for (int i = 0; i < 90; ++i) args += "&a=1";
  expect_refused(args + " HTTP/1.1\r\nHost: h\r\n\r\n", 431,
                 "over 88 header lines and query arguments together");
  // 80 lines are served.
  std::string fine = "GET /healthz HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 79; ++i) fine += "Accept: a\r\n";
  TcpConn conn = raw();
  EXPECT_EQ(answer(fine + "\r\n", conn).status, 200);
}

// Headers read once by wsbridge's checks, sent twice: lws joined them with ',' (two Origins
// echoed as one in Access-Control-Allow-Origin) or kept the first (Last-Event-ID "1" then "x"
// resumed from 1; an admin request's Sec-Fetch-Site "none" then "cross-site" passed).
TEST_P(RequestLines, RepeatedSingleHeadersAre400) {
  for (const std::string& header : std::initializer_list<std::string>{
           "Origin", "Authorization", "Content-Type", "Last-Event-ID", "Sec-Fetch-Site",
           "Sec-WebSocket-Version"}) {
    expect_refused(
        "GET /healthz HTTP/1.1\r\nHost: h\r\n" + header + ": a\r\n" + header + ": b\r\n\r\n", 400,
        "more than one " + header + " header");
  }
}

TEST_P(RequestLines, ConnectAndUnknownMethodsGet501AtOnce) {
  const auto start = std::chrono::steady_clock::now();
  expect_refused("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501,
                 "CONNECT is not served: this is no forward proxy");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  expect_refused("TRACE / HTTP/1.1\r\nHost: h\r\n\r\n", 501, "a method that is not served here");
}

TEST_P(RequestLines, HostMustBeThereOnceInHttp11) {
  expect_refused("GET /healthz HTTP/1.1\r\n\r\n", 400, "no Host header in an HTTP/1.1 request");
  expect_refused("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400,
                 "more than one Host header");
  TcpConn conn = raw();
  EXPECT_EQ(answer("GET /healthz HTTP/1.0\r\n\r\n", conn).status, 200);  // 1.0 has no Host rule
}

// RFC 9113 3.1: the h2c upgrade is ignored and the request served over HTTP/1.1, as many times as
// a keep-alive connection asks.
TEST_P(RequestLines, AnH2cUpgradeIsIgnoredAndTheRequestServed) {
  TcpConn conn = raw();
  const std::string h2c =
      "GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
      "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n";
  for (int i = 0; i < 3; ++i) {
    const HttpResponse r = answer(h2c, conn);
    EXPECT_EQ(r.status, 200) << i;
    EXPECT_NE(r.body.find("\"connections\""), std::string::npos) << r.body;
  }
}

// RFC 9110 7.8: an upgrade to a protocol this server does not do is ignored and the request
// served; lws 4.1.6 answered every value but "websocket" and "h2c" with an HTML 403, a list
// naming "websocket" among others included. Such a list is a WebSocket upgrade.
TEST_P(RequestLines, UpgradesToOtherProtocolsAreIgnoredAndTheRequestServed) {
  TcpConn conn = raw();
  for (const std::string& up :
       std::initializer_list<std::string>{"foo/2", "TLS/1.0", "websocket2", std::string(60, 'x')}) {
    const HttpResponse r = answer(
        "GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: " + up + "\r\n\r\n",
        conn);
    EXPECT_EQ(r.status, 200) << up;
    EXPECT_NE(r.body.find("\"connections\""), std::string::npos) << r.body;
  }
  TcpConn ws = raw();
  const HttpResponse r = answer(
      "GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: foo/2, WebSocket\r\nConnection: Upgrade\r\n" +
          std::string(kKeyAndVersion),
      ws);
  EXPECT_EQ(r.status, 101);
}

// The upgrade token is case-insensitive (RFC 9110 7.8): "Upgrade: WebSocket" alone was passed to
// lws as sent, which compares it with strcmp and hung the connection up without an answer.
TEST_P(RequestLines, AnUpgradeTokenInAnyCaseIsAWebSocketUpgrade) {
  for (const char* token : {"WebSocket", "WEBSOCKET", " Websocket "}) {
    TcpConn conn = raw();
    const HttpResponse r =
        answer(std::string("GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: ") + token +
                   "\r\nConnection: Upgrade\r\n" + std::string(kKeyAndVersion),
               conn);
    EXPECT_EQ(r.status, 101) << token;
  }
}

// RFC 9110 7.8: Upgrade in an HTTP/1.0 request is ignored; RFC 6455 asks for HTTP/1.1.
TEST_P(RequestLines, AnHttp10RequestIsNeverUpgraded) {
  TcpConn conn = raw();
  const HttpResponse r =
      answer("GET /echo HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                 std::string(kKeyAndVersion),
             conn);
  EXPECT_NE(r.status, 101);
  EXPECT_GE(r.status, 400);
}

// Upgrade headers lws 4.1.6 drops after the checks, closing the connection without a status (a
// hostile probe): refused first, with 400 and why, at lws' exact bounds.
TEST_P(RequestLines, UpgradeHeadersLwsWouldDropAreAnswered) {
  const auto upgrade = [](const std::string& path, const std::optional<std::string>& connection,
                          const std::string& fields = "") {
    return "GET " + path + " HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n" +
           (connection ? "Connection: " + *connection + "\r\n" : std::string()) + fields +
           std::string(kKeyAndVersion);
  };
  const auto status = [&](const std::string& request) {
    TcpConn conn = raw();
    return answer(request, conn).status;
  };
  // (Refused by the route's checks: the connection may stay open for another request.)
  const auto expect_refused = [&](const std::string& request, int code, const std::string& why) {
    TcpConn conn = raw();
    const HttpResponse r = answer(request, conn);
    EXPECT_EQ(r.status, code) << request;
    EXPECT_EQ(r.body, why + "\n") << request;
  };
  expect_refused(upgrade("/echo", std::nullopt), 400,
                 "a WebSocket upgrade needs \"Connection: Upgrade\" (RFC 6455 4.1)");
  expect_refused(upgrade("/echo", "keep-alive"), 400,
                 "a WebSocket upgrade needs the \"Upgrade\" token in Connection (RFC 6455 4.1)");
  const std::string connection = std::string(126 - 9, 'k') + ", Upgrade";  // 126 bytes: lws' most
  EXPECT_EQ(status(upgrade("/echo", connection)), 101);
  expect_refused(upgrade("/echo", "k" + connection), 400,
                 "a Connection header over 126 bytes is not supported on an upgrade");
  // Sec-WebSocket-Protocol: 126 bytes; a name lws cannot hold before the one it selects.
  const std::string protocols = "chat.v1," + std::string(126 - 8, 'p');
  EXPECT_EQ(status(upgrade("/chat", "Upgrade", "Sec-WebSocket-Protocol: " + protocols + "\r\n")),
            101);
  expect_refused(upgrade("/chat", "Upgrade", "Sec-WebSocket-Protocol: " + protocols + "p\r\n"), 400,
                 "a Sec-WebSocket-Protocol list over 126 bytes (bearer tokens apart) is not "
                 "supported");
  expect_refused(upgrade("/chat", "Upgrade",
                         "Sec-WebSocket-Protocol: " + std::string(64, 'p') + ", chat.v1\r\n"),
                 400, "a subprotocol name over 63 bytes is not supported");
  // Sec-WebSocket-Extensions: 254 bytes pass (the unknown extension is declined), 255 do not.
  const std::string offer = "permessage-deflate, x-" + std::string(254 - 22, 'a');
  EXPECT_EQ(status(upgrade("/echo", "Upgrade", "Sec-WebSocket-Extensions: " + offer + "\r\n")),
            101);
  expect_refused(
      upgrade("/echo", "Upgrade", "Sec-WebSocket-Extensions: " + offer + "a\r\n"), 400,
      "a Sec-WebSocket-Extensions offer over 254 bytes is not supported (offer permessage-deflate "
      "once, with its parameters)");
}

// A plain HTTP request on a TLS port (an http:// or ws:// URL for an https:// or wss:// one) is
// answered in plain HTTP, 400 with why, as nginx and Go's servers do; lws closed the connection
// as the handshake failed, which a browser shows as a reset. The port serves TLS as before.
TEST(PlainHttpOnTlsPort, IsAnsweredWith400SayingWhy) {
  WsbridgeInstance server(echo_server(true));
  for (const std::string& head : std::initializer_list<std::string>{
           "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n",
           "GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
               std::string(kKeyAndVersion),
           "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
           "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"}) {
    TcpConn conn = TcpConn::connect("127.0.0.1", server.port);
    conn.send_all(head);
    const HttpResponse r = conn.read_http_response(2s);
    EXPECT_EQ(r.status, 400) << head;
    EXPECT_EQ(r.body, "this port speaks TLS: use https:// or wss:// URLs here\n") << head;
    EXPECT_EQ(r.header("Connection").value_or(""), "close") << head;
    EXPECT_TRUE(conn.wait_closed(2s)) << head;
  }
  TcpConn tls = TcpConn::connect("127.0.0.1", server.port, trust_test_ca());
  tls.send_all("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(tls.read_http_response(2s).status, 200);
}

INSTANTIATE_TEST_SUITE_P(Schemes, RequestLines, ::testing::Values(Scheme::kHttp, Scheme::kHttps),
                         [](const auto& p) {
                           return std::string(p.param == Scheme::kHttps ? "https" : "http");
                         });

}  // namespace
}  // namespace wsbridge::testing
