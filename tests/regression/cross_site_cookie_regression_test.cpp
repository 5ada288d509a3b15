// Regression tests: cross-site WebSocket hijacking. A browser sends its cookies with every
// request, whichever page makes it, and a WebSocket upgrade is not held back by CORS: a page of
// any site could open a connection here and be served as the user whose cookie came along. A
// route without `allowed_origins` took the cookie from every Origin. Now, unless an allowlist
// names the origins that may, a cookie counts only from a page of the server's own origin (its
// Origin the request's Host) or from a request without Origin; on every path that reads the
// cookie as a credential: an upgrade, a fallback open (SSE or polling), a proxied upgrade.
#include <gtest/gtest.h>

#include "integration/http_test_config.hpp"
#include "integration/wsbridge_instance.hpp"
#include "support/jwt_sign.hpp"

namespace wsbridge::testing {
namespace cross_site_cookie {
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
[routes.auth]
jwt = "main"
[[routes]]
path = "/listed"
adapter = "echo"
[routes.auth]
jwt = "main"
allowed_origins = ["https://app.example.net"]
[[proxy]]
path = "/legacy"
backend = "${BACKEND}"
[proxy.auth]
jwt = "main"
)",
                      backend);
}

class CrossSiteCookie : public ::testing::Test {
 protected:
  HttpResponse send(const std::string& head) {
    TcpConn conn = TcpConn::connect("127.0.0.1", server_.port);
    conn.send_all(head);
    return conn.read_http_response(5s);
  }
  // A request as a browser sends it from a page of `origin` ("" for none), with alice's cookie.
  std::string request(const std::string& target, const std::string& origin, bool upgrade,
                      const std::string& host = "bridge.test:8080") const {
    std::string head = "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nCookie: theme=dark; " +
                       "access_token=" + alice_ + "\r\n";
    if (!origin.empty()) head += "Origin: " + origin + "\r\n";
    if (upgrade) {
      head +=
          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    }
    return head + "\r\n";
  }
  void expect_refused(const std::string& head) {
    const HttpResponse r = send(head);
    EXPECT_EQ(r.status, 403) << head;
    EXPECT_NE(r.body.find("not taken as a credential from a page of another origin"),
              std::string::npos)
        << head << "\n"
        << r.body;
  }

  HttpBackend backend_;
  WsbridgeInstance server_{config(backend_)};
  const std::string alice_ =
      sign_hs256({{"sub", "alice"}, {"iss", "tests"}, {"exp", unix_now() + 300}}, kSecret);
};

TEST_F(CrossSiteCookie, APageOfAnotherSiteIsNotServedWithTheUsersCookie) {
  const std::string evil = "https://evil.example.org";
  expect_refused(request("/private", evil, true));
  expect_refused(request("/_wsbridge/poll/private", evil, false));
  expect_refused(request("/_wsbridge/sse/private", evil, false));
  expect_refused(request("/legacy/ws", evil, true));
  EXPECT_EQ(backend_.stats()["requests"], 0) << "a refused upgrade reached the backend";
  // A page served by the bridge itself (its Origin the Host it names), default port or not.
  const std::string own = "http://bridge.test:8080";
  EXPECT_EQ(send(request("/private", own, true)).status, 101);
  EXPECT_EQ(send(request("/_wsbridge/poll/private", own, false)).status, 200);
  EXPECT_EQ(send(request("/private", "https://bridge.test", true, "bridge.test")).status, 101);
  EXPECT_EQ(send(request("/private", "https://bridge.test", true, "bridge.test:8443")).status, 403);
  // The proxied upgrade passes authentication and goes on to the backend.
  EXPECT_NE(send(request("/legacy/ws", own, true)).status, 403);
  EXPECT_TRUE(backend_.wait_for_requests(1));
  // A request without Origin is no browser's cross-site request.
  EXPECT_EQ(send(request("/private", "", true)).status, 101);
  // A page of another site with a credential of its own is judged by that.
  EXPECT_EQ(send(request("/private?access_token=" + alice_, evil, true)).status, 101);
}

TEST_F(CrossSiteCookie, AnAllowlistNamesTheSitesThatMayUseIt) {
  EXPECT_EQ(send(request("/listed", "https://app.example.net", true)).status, 101);
  EXPECT_EQ(send(request("/_wsbridge/poll/listed", "https://app.example.net", false)).status, 200);
  // Others are refused by the allowlist itself, as before.
  const HttpResponse other = send(request("/listed", "https://evil.example.org", true));
  EXPECT_EQ(other.status, 403);
  EXPECT_NE(other.body.find("origin https://evil.example.org is not allowed"), std::string::npos)
      << other.body;
}

}  // namespace
}  // namespace cross_site_cookie
}  // namespace wsbridge::testing
