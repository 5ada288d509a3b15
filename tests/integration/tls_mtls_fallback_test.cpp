// #15.5 with #16: a fallback session's token is bound to the route it was opened on and to the
// client certificate that opened it (fallback/session_token.hpp). Found by a hostile probe: a
// session opened with device-1's certificate on a require_client_cert route took POSTs and polls
// with no certificate or device-2's, a WebSocket resumed it as device-1 without one, and a token
// taken to another route's URL was served there under that route's laxer policy.
#include <gtest/gtest.h>

#include <regex>

#include "mtls_fixture.hpp"
#include "support/tls_config.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

class MtlsFallback : public Mtls {
 protected:
  void SetUp() override { start(""); }
  // One request on a connection of its own, with `cert` (or none).
  HttpResponse request(const std::string& method, const std::string& target, const IssuedCert* cert,
                       const std::string& body = "") const {
    TcpConn conn =
        TcpConn::connect("127.0.0.1", server_->port,
                         cert ? with_client_cert(trust_test_ca(), *cert) : trust_test_ca());
    std::string head = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (method == "POST") head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    conn.send_all(head + "\r\n" + body);
    return conn.read_http_response(5s);
  }
  // Opens a polling session on `route` with `cert`: its token.
  std::string open_session(const std::string& route, const IssuedCert* cert) const {
    const HttpResponse welcome = request("GET", "/_wsbridge/poll" + route, cert);
    EXPECT_EQ(welcome.status, 200) << welcome.body;
    std::smatch m;
    EXPECT_TRUE(std::regex_search(welcome.body, m, std::regex("\"session\":\"([^\"]+)\"")))
        << welcome.body;
    return m.size() > 1 ? m[1].str() : std::string();
  }
  int post(const std::string& route, const std::string& token, const IssuedCert* cert,
           std::uint64_t seq) const {
    const std::string body = std::to_string(seq) + "\nt2:hi";
    return request("POST", "/_wsbridge/send" + route + "?s=" + token, cert, body).status;
  }
};

TEST_F(MtlsFallback, LaterRequestsMustPresentTheCertificateThatOpenedTheSession) {
  const std::string token = open_session("/devices", &pki_.device);
  ASSERT_FALSE(token.empty());
  EXPECT_EQ(post("/devices", token, nullptr, 1), 404);
  EXPECT_EQ(post("/devices", token, &pki_.device_2, 1), 404);
  EXPECT_EQ(request("GET", "/_wsbridge/poll/devices?s=" + token + "&last=0", nullptr).status, 404);
  EXPECT_EQ(post("/devices", token, &pki_.device, 1), 200);
  // A session an optional certificate opened is bound to it just the same.
  const std::string open_token = open_session("/open", &pki_.device);
  EXPECT_EQ(post("/open", open_token, nullptr, 1), 404);
  EXPECT_EQ(post("/open", open_token, &pki_.device, 1), 200);
  // And one opened without a certificate is not taken over by presenting one.
  const std::string plain_token = open_session("/open", nullptr);
  EXPECT_EQ(post("/open", plain_token, &pki_.device, 1), 404);
  EXPECT_EQ(post("/open", plain_token, nullptr, 1), 200);
}

TEST_F(MtlsFallback, ATokenDoesNotWorkAtAnotherRoutesUrl) {
  const std::string token = open_session("/open", &pki_.device);
  EXPECT_EQ(post("/devices", token, &pki_.device, 1), 404);
  EXPECT_EQ(request("GET", "/_wsbridge/poll/devices?s=" + token + "&last=0", &pki_.device).status,
            404);
  EXPECT_EQ(post("/open", token, &pki_.device, 1), 200);
}

TEST_F(MtlsFallback, AWebSocketResumesTheSessionOnlyWithItsCertificate) {
  const std::string token = open_session("/devices", &pki_.device);
  auto resume = [&](const IssuedCert* cert) {
    return refused("/devices?_wsb=resume&s=" + token + "&last=0", cert).value_or(101);
  };
  EXPECT_EQ(resume(nullptr), 404);
  EXPECT_EQ(resume(&pki_.device_2), 404);
  EXPECT_EQ(resume(&pki_.device), 101);
}

}  // namespace
}  // namespace wsbridge::testing
