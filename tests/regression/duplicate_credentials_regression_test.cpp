// Regression tests: a request carrying two tokens where one is read. wsbridge took the first
// `access_token` query argument and the first bearer.<token> subprotocol entry; a proxy in front,
// a log, or the backend behind may read another, and so take the request for someone else's.
// Each is refused with 400 now, on every path that authenticates (an upgrade, a fallback open,
// a reverse-proxied request), as two Authorization headers already were. So are two fallback
// session tokens (s=) or resume points (last=) in one request.
#include <gtest/gtest.h>

#include <regex>

#include "integration/http_test_config.hpp"
#include "integration/wsbridge_instance.hpp"
#include "support/jwt_sign.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

const std::string kSecret = "the-hmac-secret-of-32-bytes-or-more-here";

std::string config(const HttpBackend& backend) {
  return with_backend(R"(
[jwt.main]
secret = ")" + kSecret + R"("
issuer = "tests"
[[listeners]]
port = ${PORT}
[[routes]]
path = "/private"
adapter = "echo"
subprotocols = ["chat"]
[routes.auth]
jwt = "main"
[[proxy]]
path = "/json"
backend = "${BACKEND}"
[proxy.auth]
jwt = "main"
)",
                      backend);
}

std::string mint(const std::string& sub) {
  return sign_hs256({{"sub", sub}, {"iss", "tests"}, {"exp", unix_now() + 300}}, kSecret);
}

class DuplicateCredentials : public ::testing::Test {
 protected:
  HttpResponse send(const std::string& head) {
    TcpConn conn = TcpConn::connect("127.0.0.1", server_.port);
    conn.send_all(head);
    return conn.read_http_response(5s);
  }
  static std::string upgrade(const std::string& target, const std::string& extra = "") {
    return "GET " + target +
           " HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
           extra + "\r\n";
  }
  static std::string get(const std::string& target) {
    return "GET " + target + " HTTP/1.1\r\nHost: t\r\n\r\n";
  }
  void expect_refused(const std::string& head, const std::string& reason) {
    const HttpResponse r = send(head);
    EXPECT_EQ(r.status, 400) << head;
    EXPECT_NE(r.body.find(reason), std::string::npos) << head << "\n" << r.body;
  }

  HttpBackend backend_;
  WsbridgeInstance server_{config(backend_)};
  const std::string alice_ = mint("alice");
  const std::string mallory_ = mint("mallory");
};

TEST_F(DuplicateCredentials, TwoQueryTokensAreRefusedOnEveryPath) {
  const std::string two = "?access_token=" + alice_ + "&access_token=" + mallory_;
  const std::string reason = "more than one access_token query argument";
  expect_refused(upgrade("/private" + two, "Sec-WebSocket-Protocol: chat\r\n"), reason);
  expect_refused(get("/_wsbridge/poll/private" + two), reason);
  expect_refused(get("/json/a" + two), reason);
  EXPECT_EQ(backend_.stats()["requests"], 0) << "a refused request reached the backend";
  // One is taken on each.
  const std::string one = "?access_token=" + alice_;
  EXPECT_EQ(send(upgrade("/private" + one, "Sec-WebSocket-Protocol: chat\r\n")).status, 101);
  EXPECT_EQ(send(get("/_wsbridge/poll/private" + one)).status, 200);
  EXPECT_EQ(send(get("/json/a" + one)).status, 200);
}

TEST_F(DuplicateCredentials, TwoBearerSubprotocolEntriesAreRefused) {
  const std::string reason = "more than one bearer token in Sec-WebSocket-Protocol";
  for (const std::string& offer :
       {"Sec-WebSocket-Protocol: chat, bearer." + alice_ + ", bearer." + mallory_ + "\r\n",
        "Sec-WebSocket-Protocol: bearer." + alice_ + ", chat\r\nSec-WebSocket-Protocol: bearer." +
            mallory_ + "\r\n"}) {
    expect_refused(upgrade("/private", offer), reason);
    expect_refused(upgrade("/json/ws", offer), reason);
  }
  EXPECT_EQ(
      send(upgrade("/private", "Sec-WebSocket-Protocol: chat, bearer." + alice_ + "\r\n")).status,
      101);
}

TEST_F(DuplicateCredentials, TwoSessionTokensOrResumePointsAreRefused) {
  const HttpResponse opened = send(get("/_wsbridge/poll/private?access_token=" + alice_));
  ASSERT_EQ(opened.status, 200);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(opened.body, m, std::regex("\"session\":\"([^\"]+)\"")));
  const std::string s = "s=" + m[1].str();
  expect_refused(get("/_wsbridge/poll/private?" + s + "&" + s + "&last=0"),
                 "more than one s= query argument");
  expect_refused(get("/_wsbridge/poll/private?" + s + "&last=0&last=5"),
                 "more than one last= query argument");
  expect_refused(
      upgrade("/private?_wsb=resume&" + s + "&last=0&last=1", "Sec-WebSocket-Protocol: chat\r\n"),
      "more than one last= query argument");
  // One of each is served: a message sent, and the poll that gets its echo.
  const std::string body = "1\nt2:hi";
  EXPECT_EQ(send("POST /_wsbridge/send/private?" + s + " HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body)
                .status,
            200);
  const HttpResponse echoed = send(get("/_wsbridge/poll/private?" + s + "&last=0"));
  EXPECT_EQ(echoed.status, 200);
  EXPECT_NE(echoed.body.find("hi"), std::string::npos) << echoed.body;
}

}  // namespace
}  // namespace wsbridge::testing
