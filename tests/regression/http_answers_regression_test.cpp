// HTTP answers a hostile probe found wrong (#15, #16). Each case failed before its fix:
// - a reply whose head outgrew a fixed 1 KiB (a redirect's Location for a long path, an echoed
//   long Origin on a fallback answer) was never sent, and the connection just closed;
// - a HEAD answer carried the GET answer's body, which the client reads as the next response,
//   and then (fixed) said Content-Length: 0 where the GET's was N (RFC 9110 8.6);
//   HEAD /healthz got 405, and POST /healthz 404;
// - the redirect to https lost the path of any method but GET, and turned a POST into a GET (301);
// - the query's arguments stopped at the first empty one ("?&s=TOKEN" lost the token);
// - "Expect: 100-continue" was never answered (and then answered to HTTP/1.0 clients too, which
//   cannot read a 100).
#include <gtest/gtest.h>

#include <cstdlib>
#include <regex>

#include "integration/wsbridge_instance.hpp"
#include "support/tls_config.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

class HttpAnswers : public ::testing::Test {
 protected:
  // A plain request on a connection of its own to `port`; the raw bytes until the server closes.
  std::string exchange(std::uint16_t port, const std::string& request) const {
    TcpConn conn = TcpConn::connect("127.0.0.1", port);
    conn.send_all(request);
    return conn.read_until_close(5s);
  }
  WsbridgeInstance server_{R"(
[[listeners]]
address = "127.0.0.1"
port = ${PORT}
)" + tls_table(TestPki::get().server) +
                           R"(
[[listeners]]
address = "127.0.0.1"
port = ${PORT2}
redirect_to_https = ${PORT}
[[routes]]
path = "/echo"
adapter = "echo"
)"};
};

TEST_F(HttpAnswers, RedirectsKeepLongPathsEveryMethodAndEmptyArguments) {
  const std::string path = "/app/" + std::string(1500, 'p') + "/!!!";
  const std::string moved =
      exchange(server_.port2, "GET " + path +
                                  "?x=1&&b=2 HTTP/1.1\r\nHost: "
                                  "example.test\r\nConnection: close\r\n\r\n");
  const std::string https = "https://example.test:" + std::to_string(server_.port);
  ASSERT_TRUE(moved.starts_with("HTTP/1.1 301 ")) << moved.substr(0, 200);
  EXPECT_NE(moved.find("\r\nLocation: " + https + "/app/" + std::string(1500, 'p') +
                       "/%21%21%21?x=1&b=2\r\n"),
            std::string::npos)
      << moved.substr(0, 300);
  // A Host that is no host is not echoed into the Location ("[]" is no IPv6 address).
  for (const std::string& host : std::vector<std::string>{
           "[]", "[::::]", "[v1.x]", "a..b", "-a.b", "a-.b", "a.b.", ".a", "good.test:abc",
           "good.test:1:2", "[::1]junk", "[::1]:x", std::string(64, 'a') + ".test"}) {
    const std::string answer = exchange(
        server_.port2, "GET /x HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n");
    EXPECT_NE(
        answer.find("\r\nLocation: https://127.0.0.1:" + std::to_string(server_.port) + "/x\r\n"),
        std::string::npos)
        << host << ": " << answer;
  }
  const std::string post = exchange(
      server_.port2, "POST /form?y=1 HTTP/1.1\r\nHost: example.test\r\nContent-Length: 0\r\n\r\n");
  EXPECT_TRUE(post.starts_with("HTTP/1.1 308 ")) << post;
  EXPECT_NE(post.find("\r\nLocation: " + https + "/form?y=1\r\n"), std::string::npos) << post;
}

TEST_F(HttpAnswers, HeadGetsTheHeadAloneAndHealthzAnswersIt) {
  TcpConn conn = TcpConn::connect("127.0.0.1", server_.port, trust_test_ca());
  // Pipelined behind the HEAD: with a body after the HEAD's head, the GET's answer would be
  // read from the middle of it.
  conn.send_all(
      "HEAD /healthz HTTP/1.1\r\nHost: h\r\n\r\nGET /healthz HTTP/1.1\r\nHost: h\r\n"
      "Connection: close\r\n\r\n");
  const std::string both = conn.read_until_close(5s);
  ASSERT_TRUE(both.starts_with("HTTP/1.1 200 OK\r\n")) << both;
  const auto head_end = both.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  EXPECT_NE(both.substr(0, head_end).find("content-length: "), std::string::npos) << both;
  EXPECT_TRUE(both.substr(head_end + 4).starts_with("HTTP/1.1 200 OK\r\n")) << both;
  // RFC 9110 8.6: the HEAD's Content-Length is the GET's (it said 0). So for every answer.
  const auto length_of = [](const std::string& answer) {
    std::smatch m;
    return std::regex_search(answer, m,
                             std::regex("\r\ncontent-length: (\\d+)\r\n", std::regex::icase))
               ? m[1].str()
               : "(none)";
  };
  // (/healthz's body holds its uptime, in as many digits as it takes: a byte or two apart.)
  const auto about = [&](const std::string& a, const std::string& b) {
    return std::abs(std::stol("0" + a) - std::stol("0" + b)) <= 4;
  };
  EXPECT_NE(length_of(both.substr(0, head_end + 2)), "0") << both;
  EXPECT_TRUE(about(length_of(both.substr(0, head_end + 2)), length_of(both.substr(head_end + 2))))
      << both;
  const auto answer = [&](const std::string& method, const std::string& path) {
    TcpConn one = TcpConn::connect("127.0.0.1", server_.port, trust_test_ca());
    one.send_all(method + " " + path + " HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    return one.read_until_close(5s);
  };
  for (const std::string path : {"/healthz", "/nowhere", "/echo", "/_wsbridge/nothing"}) {
    const std::string get = answer("GET", path);
    const std::string head = answer("HEAD", path);
    EXPECT_EQ(head.substr(0, head.find(' ', 9)), get.substr(0, get.find(' ', 9))) << path;
    EXPECT_NE(length_of(get), "0") << path << ": " << get;
    if (path == "/healthz") {
      EXPECT_TRUE(about(length_of(head), length_of(get))) << head << get;
    } else {
      EXPECT_EQ(length_of(head), length_of(get)) << path << ": " << head;
    }
    EXPECT_TRUE(head.ends_with("\r\n\r\n")) << path << ": a body after the head: " << head;
  }
  const std::string moved = exchange(
      server_.port2, "HEAD /x HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(moved.starts_with("HTTP/1.1 301 ")) << moved;
  EXPECT_TRUE(moved.ends_with("\r\n\r\n")) << moved;
}

// An HTTP/1.0 client asking for keep-alive is told it was granted (lws keeps the connection
// open, but the answer said nothing, so the client took it as the last one).
TEST_F(HttpAnswers, Http10KeepAliveIsSaidInTheAnswer) {
  TcpConn conn = TcpConn::connect("127.0.0.1", server_.port, trust_test_ca());
  conn.send_all("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const HttpResponse first = conn.read_http_response(5s);
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.header("Connection").value_or("(none)"), "keep-alive");
  conn.send_all("GET /nowhere HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const HttpResponse second = conn.read_http_response(5s);
  EXPECT_EQ(second.status, 404);
  EXPECT_EQ(second.header("Connection").value_or("(none)"), "keep-alive");
  conn.send_all("GET /healthz HTTP/1.0\r\n\r\n");
  const std::string last = conn.read_until_close(5s);
  EXPECT_TRUE(last.starts_with("HTTP/1.0 200 ")) << last;  // (lws answers in the request's version)
  EXPECT_EQ(last.find("keep-alive"), std::string::npos) << last;
}

// Every other method gets 405 naming GET and HEAD: a POST got 404 (lws hands a POST's
// callback an empty path).
TEST_F(HttpAnswers, HealthzAnswersOtherMethodsWith405) {
  for (const std::string request :
       {"POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi",
        "POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        "PUT /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        "DELETE /healthz HTTP/1.1\r\nHost: h\r\n\r\n"}) {
    TcpConn conn = TcpConn::connect("127.0.0.1", server_.port, trust_test_ca());
    conn.send_all(request);
    const HttpResponse r = conn.read_http_response(5s);
    EXPECT_EQ(r.status, 405) << request;
    EXPECT_EQ(r.header("Allow").value_or(""), "GET, HEAD") << request;
  }
}

TEST_F(HttpAnswers, FallbackAnswersEchoALongOriginAndFindTheTokenPastEmptyArguments) {
  const std::string origin = "https://" + std::string(1500, 'o') + ".example";
  auto request = [&](const std::string& head) {
    TcpConn conn = TcpConn::connect("127.0.0.1", server_.port, trust_test_ca());
    conn.send_all(head);
    return conn.read_http_response(5s);
  };
  const HttpResponse welcome =
      request("GET /_wsbridge/poll/echo HTTP/1.1\r\nHost: h\r\nOrigin: " + origin + "\r\n\r\n");
  ASSERT_EQ(welcome.status, 200);
  EXPECT_EQ(welcome.header("Access-Control-Allow-Origin"), origin);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(welcome.body, m, std::regex("\"session\":\"([^\"]+)\"")));
  const std::string body = "1\nt2:hi";
  const HttpResponse sent =
      request("POST /_wsbridge/send/echo?&x=1&&s=" + m[1].str() +
              " HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(body.size()) +
              "\r\nOrigin: " + origin + "\r\n\r\n" + body);
  EXPECT_EQ(sent.status, 200) << sent.body;
  EXPECT_EQ(sent.header("Access-Control-Allow-Origin"), origin);
  // RFC 9110 10.1.1: the body waits for the 100, which was never sent (curl waited 1 s, a client
  // that waits for it was closed by the handshake timeout).
  TcpConn conn = TcpConn::connect("127.0.0.1", server_.port, trust_test_ca());
  const std::string second = "2\nt2:ho";
  conn.send_all("POST /_wsbridge/send/echo?s=" + m[1].str() +
                " HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: " +
                std::to_string(second.size()) + "\r\n\r\n");
  EXPECT_EQ(conn.read_http_response(2s).status, 100);  // before the body is sent
  conn.send_all(second);
  EXPECT_EQ(conn.read_http_response(2s).status, 200);
  // RFC 9110 10.1.1: an HTTP/1.0 client cannot read a 100; its expectation is ignored.
  TcpConn old = TcpConn::connect("127.0.0.1", server_.port, trust_test_ca());
  const std::string third = "3\nt2:hu";
  old.send_all("POST /_wsbridge/send/echo?s=" + m[1].str() +
               " HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: " +
               std::to_string(third.size()) + "\r\n\r\n" + third);
  const HttpResponse old_answer = old.read_http_response(2s);
  EXPECT_EQ(old_answer.status, 200) << old_answer.body;
  // The expectation on two lines (lws joins them with a comma): it was not answered.
  TcpConn twice = TcpConn::connect("127.0.0.1", server_.port, trust_test_ca());
  const std::string fourth = "4\nt2:hy";
  twice.send_all("POST /_wsbridge/send/echo?s=" + m[1].str() +
                 " HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nExpect: 100-continue\r\n"
                 "Content-Length: " +
                 std::to_string(fourth.size()) + "\r\n\r\n");
  EXPECT_EQ(twice.read_http_response(2s).status, 100);
  twice.send_all(fourth);
  EXPECT_EQ(twice.read_http_response(2s).status, 200);
  const HttpResponse preflight = request(
      "OPTIONS /_wsbridge/send/echo HTTP/1.1\r\nHost: h\r\n"
      "Origin: " +
      origin + "\r\n\r\n");
  EXPECT_EQ(preflight.status, 204);
}

}  // namespace
}  // namespace wsbridge::testing
