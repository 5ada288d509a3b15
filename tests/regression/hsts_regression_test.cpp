// A TLS listener's `hsts` (docs/CONFIG.md: "added to every HTTP answer of this listener") was
// added only to the answers lws writes. The answers wsbridge writes below lws had none: the recv
// guard's own 400/431, the reverse proxy's relayed responses and its own refusals (502, 400...),
// and the 503/504 of a held upgrade. A plain listener must never send it (RFC 6797 7.2).
#include <gtest/gtest.h>

#include "integration/wsbridge_instance.hpp"
#include "support/http_backend.hpp"
#include "support/tls_config.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kHsts = "max-age=600; includeSubDomains";

class Hsts : public ::testing::Test {
 protected:
  // GET `path` over https with `headers`.
  HttpResponse get(const std::string& path,
                   std::vector<std::pair<std::string, std::string>> headers = {}) {
    ClientOptions https = server_.client(path);
    https.tls = trust_test_ca();
    https.extra_headers = std::move(headers);
    return http_get(https);
  }

  HttpBackend backend_;
  std::string config_ = [this] {
    std::string config = R"(
[[listeners]]
address = "127.0.0.1"
port = ${PORT}
)" + tls_table(TestPki::get().server, "hsts = \"" + std::string(kHsts) + "\"\n") +
                         R"(
[[listeners]]
address = "127.0.0.1"
port = ${PORT2}
redirect_to_https = ${PORT}
[[routes]]
path = "/echo"
adapter = "echo"
[[proxy]]
path = "/json"
backend = "${BACKEND}"
[[proxy]]
path = "/nobody"
backend = "http://127.0.0.1:${CLOSED}"
)";
    WsbridgeInstance::replace_all(config, "${BACKEND}", backend_.base_url());
    WsbridgeInstance::replace_all(config, "${CLOSED}", std::to_string(free_tcp_port()));
    return config;
  }();
  WsbridgeInstance server_{config_};
};

TEST_F(Hsts, EveryAnswerOfTheTlsListenerCarriesIt) {
  // lws' own answers (they had it before).
  EXPECT_EQ(get("/healthz").header("Strict-Transport-Security"), kHsts);
  EXPECT_EQ(get("/no/such/page").header("Strict-Transport-Security"), kHsts);
  // The recv guard's: a head over 16 KiB, and one lws might read differently.
  const HttpResponse too_long = get("/echo", {{"X-Long", std::string(20000, 'a')}});
  EXPECT_EQ(too_long.status, 431);
  EXPECT_EQ(too_long.header("Strict-Transport-Security"), kHsts);
  const HttpResponse malformed = get("/echo", {{"X-Bad", "a\rb"}});
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(malformed.header("Strict-Transport-Security"), kHsts);
  // The reverse proxy's: a relayed response, its own 502, its own 400.
  const HttpResponse relayed = get("/json/x");
  EXPECT_EQ(relayed.status, 200);
  EXPECT_EQ(relayed.header("Strict-Transport-Security"), kHsts);
  const HttpResponse unreachable = get("/nobody/x");
  EXPECT_EQ(unreachable.status, 502);
  EXPECT_EQ(unreachable.header("Strict-Transport-Security"), kHsts);
  const HttpResponse unsafe = get("/json/%2e%2e/x");
  EXPECT_EQ(unsafe.status, 400);
  EXPECT_EQ(unsafe.header("Strict-Transport-Security"), kHsts);
}

TEST_F(Hsts, ThePlainListenerNeverSendsIt) {
  const HttpResponse moved = http_get("127.0.0.1", server_.port2, "/echo");
  EXPECT_EQ(moved.status, 301);
  EXPECT_FALSE(moved.header("Strict-Transport-Security").has_value());
}

}  // namespace
}  // namespace wsbridge::testing
