// #15.5: client certificates as identity. A route with require_client_cert answers 403 to an
// upgrade without a verified certificate; [routes.auth] client_cert = true makes the certificate
// a credential (user = subject CN, claims cert.cn, cert.san, cert.fingerprint), which the mqtt
// adapter's ACL templates ({claim.cert.cn}, {claim.cert.fingerprint}) and the on_connect hook
// see.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "mtls_fixture.hpp"
#include "support/http_backend.hpp"
#include "support/mosquitto.hpp"
#include "support/tls_config.hpp"
#include "wsbridge_instance.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

TEST_F(Mtls, RouteRequiringACertificateIs403WithoutOne) {
  start("");
  EXPECT_EQ(refused("/devices", nullptr), 403);
  EXPECT_EQ(refused("/open", nullptr), std::nullopt);  // the listener itself lets them in
  WsClient ws = WsClient::connect(client("/devices", &pki_.device));
  ws.send_text("from device-1");
  EXPECT_EQ(ws.read_message().data, "from device-1");
}

TEST_F(Mtls, TheCertificateIsTheIdentityTheHookSees) {
  HttpBackend backend;
  start(R"(
[[routes]]
path = "/hooked"
adapter = "http"
backend = ")" +
        backend.base_url() +
        R"(/echo"
on_connect = ")" +
        backend.base_url() + R"(/hook/connect"
[routes.auth]
client_cert = true
)");
  // Without a certificate there is no credential: 401, and the hook is never asked.
  EXPECT_EQ(refused("/hooked", nullptr), 401);
  WsClient ws = WsClient::connect(client("/hooked", &pki_.device));
  json hook;
  for (const json& r : backend.requests()) {
    if (r["path"] == "/hook/connect") hook = json::parse(r["body"].get<std::string>());
  }
  ASSERT_FALSE(hook.is_null()) << backend.requests().dump();
  EXPECT_EQ(hook["user"], "device-1");
  EXPECT_EQ(hook["auth_method"], "client_cert");
  EXPECT_EQ(hook["claims"]["cert.cn"], "device-1") << hook.dump();
  EXPECT_EQ(hook["claims"]["cert.fingerprint"], pki_.device.fingerprint) << hook.dump();
  const json san = hook["claims"]["cert.san"];
  EXPECT_NE(std::find(san.begin(), san.end(), "URI:urn:dev:device-1"), san.end()) << san.dump();
  EXPECT_NE(std::find(san.begin(), san.end(), "email:device-1@example.test"), san.end())
      << san.dump();
  ASSERT_TRUE(server_->process->wait_for_output("user=device-1", 2s));
}

// A browser presents its certificate whichever page opens the connection: a page of another
// origin is not served with it (cross-site WebSocket hijacking), neither as the credential nor
// to meet require_client_cert; the server's own pages and devices (no Origin) are.
TEST_F(Mtls, APageOfAnotherOriginIsNotServedWithTheBrowsersCertificate) {
  start(R"(
[[routes]]
path = "/certified"
adapter = "echo"
[routes.auth]
client_cert = true
)");
  const auto status = [&](const std::string& path, const std::string& origin,
                          const std::string& fetch_site = "") -> std::optional<int> {
    ClientOptions opts = client(path, &pki_.device);
    if (!origin.empty()) opts.extra_headers.emplace_back("Origin", origin);
    if (!fetch_site.empty()) opts.extra_headers.emplace_back("Sec-Fetch-Site", fetch_site);
    try {
      WsClient::connect(opts);
      return std::nullopt;
    } catch (const HandshakeError& e) {
      return e.response().status;
    }
  };
  const std::string evil = "https://evil.example.org";
  EXPECT_EQ(status("/certified", evil), 403);
  EXPECT_EQ(status("/devices", evil), 403);
  EXPECT_EQ(status("/certified", evil, "cross-site"), 403);
  // The server's own page: its Origin the Host the client named (https: this is TLS), or the
  // browser's own word.
  const std::string own = "127.0.0.1:" + std::to_string(server_->port);
  EXPECT_EQ(status("/certified", "https://" + own), std::nullopt);
  EXPECT_EQ(status("/devices", "https://" + own), std::nullopt);
  EXPECT_EQ(status("/certified", "http://" + own), 403);
  EXPECT_EQ(status("/certified", "https://app.example.org", "same-origin"), std::nullopt);
  EXPECT_EQ(status("/certified", ""), std::nullopt);  // a device's client sends no Origin
}

TEST_F(Mtls, MqttAclTemplateTakesTheCertificateCn) {
  Mosquitto broker;
  start(R"(
[upstreams.local]
uri = ")" +
        broker.uri() +
        R"("
[[routes]]
path = "/mqtt"
adapter = "mqtt"
upstream = "local"
allow_subscribe = ["devices/{claim.cert.cn}/#", "by-fingerprint/{claim.cert.fingerprint}/#"]
allow_publish = ["devices/{claim.cert.cn}/#"]
[routes.auth]
client_cert = true
)");
  ASSERT_TRUE(server_->process->wait_for_output("upstream local: connected", 10s));
  EXPECT_EQ(refused("/mqtt", nullptr), 401);
  for (const IssuedCert* who : {&pki_.device, &pki_.device_2}) {
    const std::string me = who == &pki_.device ? "device-1" : "device-2";
    const std::string other = who == &pki_.device ? "device-2" : "device-1";
    SCOPED_TRACE(me);
    WsClient ws = WsClient::connect(client("/mqtt", who));
    EXPECT_EQ(json::parse(ws.read_message().data)["type"], "status");
    int id = 0;
    auto request = [&](const std::string& type, const std::string& topic) {
      json j = {{"type", type}, {"topic", topic}, {"id", ++id}};
      if (type == "publish") j["payload"] = "x";
      ws.send_text(j.dump());
      // The answer with our id (our own publishes also come back as messages: skip those).
      for (;;) {
        json answer = json::parse(ws.read_message().data);
        if (answer.value("id", json()) == id) return answer;
      }
    };
    EXPECT_EQ(request("subscribe", "devices/" + me + "/#")["type"], "ack");
    EXPECT_EQ(request("subscribe", "devices/" + other + "/#")["code"], "forbidden");
    EXPECT_EQ(request("subscribe", "devices/#")["code"], "forbidden");
    // cert.fingerprint: SHA-256 of the certificate, lowercase hex without colons.
    const IssuedCert* another = who == &pki_.device ? &pki_.device_2 : &pki_.device;
    EXPECT_EQ(request("subscribe", "by-fingerprint/" + who->fingerprint + "/#")["type"], "ack");
    EXPECT_EQ(request("subscribe", "by-fingerprint/" + another->fingerprint + "/#")["code"],
              "forbidden");
    EXPECT_EQ(request("publish", "devices/" + me + "/telemetry")["type"], "ack");
    EXPECT_EQ(request("publish", "devices/" + other + "/telemetry")["code"], "forbidden");
  }
}

// A subject with two CNs ("CN=device-2, CN=device-1") names nobody: OpenSSL finds the first,
// RFC 6125 verifiers take the last, and a CA that checked one may have signed the other unread.
// The fingerprint is the identity then, and {claim.cert.cn} grants nothing. (Before, the first
// CN was the identity: the ACL of device-2.)
TEST_F(Mtls, ACertificateWithTwoCommonNamesIsNamedByItsFingerprint) {
  Mosquitto broker;
  start(R"(
[upstreams.local]
uri = ")" +
        broker.uri() +
        R"("
[[routes]]
path = "/mqtt"
adapter = "mqtt"
upstream = "local"
allow_subscribe = ["devices/{claim.cert.cn}/#", "by-fingerprint/{claim.cert.fingerprint}/#"]
[routes.auth]
client_cert = true
)");
  ASSERT_TRUE(server_->process->wait_for_output("upstream local: connected", 10s));
  const IssuedCert two_names = pki_.client_ca.issue(
      {.cn = "device-2", .sans = {}, .client = true, .more_cns = {"device-1"}});
  ASSERT_NE(two_names.subject.find("device-1"), std::string::npos) << two_names.subject;
  ASSERT_NE(two_names.subject.find("device-2"), std::string::npos) << two_names.subject;
  WsClient ws = WsClient::connect(client("/mqtt", &two_names));
  EXPECT_EQ(json::parse(ws.read_message().data)["type"], "status");
  int id = 0;
  auto subscribe = [&](const std::string& topic) {
    ws.send_text(json{{"type", "subscribe"}, {"topic", topic}, {"id", ++id}}.dump());
    return json::parse(ws.read_message().data);
  };
  EXPECT_EQ(subscribe("devices/device-1/#")["code"], "forbidden");
  EXPECT_EQ(subscribe("devices/device-2/#")["code"], "forbidden");
  EXPECT_EQ(subscribe("by-fingerprint/" + two_names.fingerprint + "/#")["type"], "ack");
  EXPECT_TRUE(server_->process->wait_for_output("user=" + two_names.fingerprint, 2s));
}

}  // namespace
}  // namespace wsbridge::testing
