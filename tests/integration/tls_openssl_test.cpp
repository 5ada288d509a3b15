// #15.1, 3, 5 and 8 with `openssl s_client`, a TLS client nobody on this project wrote: protocol
// versions below min_version refused, the certificate chosen by SNI (exact name, then
// *.domain, else the default), client certificates required / optional / from the wrong CA, ALPN,
// and https:// on the same port as wss:// (with HSTS, and a plain listener that redirects).
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "support/tls_config.hpp"
#include "wsbridge_instance.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

const std::string kHealthz =
    "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

struct SClient {
  int status = -1;
  std::string out;
  bool served() const { return out.find("HTTP/1.1 200") != std::string::npos; }
  bool has(const std::string& s) const { return out.find(s) != std::string::npos; }
};

// `openssl s_client -connect 127.0.0.1:port ARGS`, sends `request` and reads until the server
// closes (-ign_eof). Exit status 0 when the TLS handshake succeeded.
SClient s_client(uint16_t port, std::vector<std::string> args,
                 const std::string& request = kHealthz) {
  std::vector<std::string> argv = {
      "sh",      "-c",       "printf '%s' \"$REQ\" | exec timeout 10 openssl s_client \"$@\" 2>&1",
      "sh",      "-connect", "127.0.0.1:" + std::to_string(port),
      "-ign_eof"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto child = ChildProcess::spawn(argv, {"REQ=" + request});
  SClient r;
  const auto status = child.wait_exit(15s);
  if (!status) child.signal(SIGKILL);
  r.status = status.value_or(-1);
  r.out = child.output();
  return r;
}

std::string server_config(const std::string& tls_extra, const std::string& more = "") {
  const TestPki& pki = TestPki::get();
  return R"(
[[listeners]]
address = "127.0.0.1"
port = ${PORT}
)" + tls_table(pki.server, tls_extra) +
         R"(
  [[listeners.tls.sni]]
  server_names = ["api.example.test", "*.example.test"]
  cert_file = ")" +
         pki.api.cert_file + "\"\n  key_file = \"" + pki.api.key_file + R"("
[[routes]]
path = "/echo"
adapter = "echo"
)" + more;
}

TEST(TlsOpenssl, VersionsBelowTheMinimumAreRefused) {
  WsbridgeInstance server(server_config(""));     // min_version defaults to 1.2
  const std::string weak = "DEFAULT@SECLEVEL=0";  // so that the client can offer TLS 1.1
  SClient v11 = s_client(server.port, {"-tls1_1", "-cipher", weak});
  EXPECT_NE(v11.status, 0) << v11.out;
  EXPECT_FALSE(v11.served()) << v11.out;
  SClient v12 = s_client(server.port, {"-tls1_2"});
  EXPECT_EQ(v12.status, 0) << v12.out;
  EXPECT_TRUE(v12.served()) << v12.out;
  EXPECT_TRUE(v12.has("Protocol  : TLSv1.2")) << v12.out;
  SClient v13 = s_client(server.port, {"-tls1_3"});
  EXPECT_TRUE(v13.served()) << v13.out;
  EXPECT_TRUE(v13.has("Protocol  : TLSv1.3")) << v13.out;

  WsbridgeInstance strict(server_config("min_version = \"1.3\"\n"));
  SClient s12 = s_client(strict.port, {"-tls1_2"});
  EXPECT_NE(s12.status, 0) << s12.out;
  EXPECT_FALSE(s12.served()) << s12.out;
  EXPECT_TRUE(s_client(strict.port, {"-tls1_3"}).served());
}

TEST(TlsOpenssl, SniPicksTheCertificate) {
  WsbridgeInstance server(server_config(""));
  const std::string ca = TestPki::get().ca.cert_file();
  auto subject_cn = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"-CAfile", ca, "-verify_return_error"});
    SClient r = s_client(server.port, args);
    EXPECT_TRUE(r.served()) << r.out;
    for (const std::string cn : {"api.example.test", "localhost"}) {
      if (r.has("subject=O = wsbridge tests, CN = " + cn)) return cn;
    }
    return "no subject in: " + r.out;
  };
  EXPECT_EQ(subject_cn({"-servername", "api.example.test"}), "api.example.test");
  EXPECT_EQ(subject_cn({"-servername", "eu.example.test"}), "api.example.test");  // *.example.test
  EXPECT_EQ(subject_cn({"-servername", "localhost"}), "localhost");
  EXPECT_EQ(subject_cn({"-servername", "other.test"}), "localhost");  // unknown: the default
  EXPECT_EQ(subject_cn({"-noservername"}), "localhost");
  // A wildcard covers one label only.
  EXPECT_EQ(subject_cn({"-servername", "a.b.example.test"}), "localhost");
}

TEST(TlsOpenssl, AlpnIsHttp11) {
  WsbridgeInstance server(server_config(""));
  SClient r = s_client(server.port, {"-alpn", "h2,http/1.1"});
  EXPECT_TRUE(r.has("ALPN protocol: http/1.1")) << r.out;
  EXPECT_TRUE(r.served()) << r.out;
}

class TlsClientCert : public ::testing::Test {
 protected:
  std::vector<std::string> cert(const IssuedCert& c) {
    return {"-cert", c.cert_file, "-key", c.key_file};
  }
  const TestPki& pki_ = TestPki::get();
};

TEST_F(TlsClientCert, Required) {
  WsbridgeInstance server(server_config("client_ca_file = \"" + pki_.client_ca.cert_file() +
                                        "\"\nclient_cert = \"required\"\n"));
  EXPECT_TRUE(s_client(server.port, cert(pki_.device)).served());
  // Without one the handshake fails (TLS 1.2) or the alert comes after it (TLS 1.3): no answer.
  for (const std::string v : {"-tls1_2", "-tls1_3"}) {
    SClient none = s_client(server.port, {v});
    EXPECT_FALSE(none.served()) << v << "\n" << none.out;
    auto wrong = cert(pki_.device_wrong_ca);
    wrong.push_back(v);
    SClient foreign = s_client(server.port, wrong);
    EXPECT_FALSE(foreign.served()) << v << "\n" << foreign.out;
  }
}

TEST_F(TlsClientCert, Optional) {
  WsbridgeInstance server(server_config("client_ca_file = \"" + pki_.client_ca.cert_file() +
                                        "\"\nclient_cert = \"optional\"\n"));
  SClient none = s_client(server.port, {});
  EXPECT_TRUE(none.served()) << none.out;
  EXPECT_TRUE(s_client(server.port, cert(pki_.device)).served());
  // The server asks for certificates from the client CA...
  EXPECT_TRUE(none.has("Acceptable client certificate CA names")) << none.out;
  EXPECT_TRUE(none.has("CN = wsbridge client CA")) << none.out;
  // ...and refuses one that does not verify rather than treating it as absent.
  SClient foreign = s_client(server.port, cert(pki_.device_wrong_ca));
  EXPECT_FALSE(foreign.served()) << foreign.out;
}

// A session resumes only under the client-certificate policy it began with: one begun without a
// certificate under "optional", or with one from a CA since removed, is not resumed after a reload
// (its client gets a full handshake under the new policy, which refuses it).
TEST_F(TlsClientCert, SessionsDoNotResumeAcrossAPolicyChange) {
  const std::string optional = server_config("client_ca_file = \"" + pki_.client_ca.cert_file() +
                                             "\"\nclient_cert = \"optional\"\n");
  WsbridgeInstance server(optional);
  const std::string dir = ::testing::TempDir();
  for (const std::string v : {"-tls1_2", "-tls1_3"}) {
    SCOPED_TRACE(v);
    const std::string session = dir + "/wsbridge-session" + v + ".pem";
    ASSERT_TRUE(s_client(server.port, {v, "-sess_out", session}).served());
    const SClient again = s_client(server.port, {v, "-sess_in", session});
    EXPECT_TRUE(again.has("Reused,")) << again.out;  // the same policy: resumed
    EXPECT_TRUE(again.served());
  }
  std::string required = optional;
  required.replace(required.find("\"optional\""), 10, "\"required\"");
  server.rewrite_config(required);
  server.process->signal(SIGHUP);
  // (The reload is in force once a fresh handshake without a certificate fails.)
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (s_client(server.port, {"-tls1_3"}).served() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  for (const std::string v : {"-tls1_2", "-tls1_3"}) {
    SCOPED_TRACE(v);
    const SClient resumed =
        s_client(server.port, {v, "-sess_in", dir + "/wsbridge-session" + v + ".pem"});
    EXPECT_FALSE(resumed.has("Reused,")) << resumed.out;
    EXPECT_FALSE(resumed.served()) << resumed.out;
  }
}

// A session resumes only under the ciphers it began with: a reload that took its cipher out of
// the list gives its client a full handshake with one still allowed. (Resumed, the cipher the
// reload removed went on being used, ticket after ticket.)
TEST(TlsOpenssl, SessionsDoNotResumeWithACipherAReloadRemoved) {
  const std::string both =
      server_config("ciphers = \"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384\"\n");
  WsbridgeInstance server(both);
  const std::string session = ::testing::TempDir() + "/wsbridge-cipher-session.pem";
  const std::vector<std::string> aes128 = {"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"};
  std::vector<std::string> out = aes128;
  out.insert(out.end(), {"-sess_out", session});
  ASSERT_TRUE(s_client(server.port, out).served());
  const std::vector<std::string> resume = {
      "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
      "-sess_in", session};
  const SClient again = s_client(server.port, resume);
  EXPECT_TRUE(again.has("Reused,")) << again.out;  // the same settings: resumed
  std::string only256 = both;
  only256.replace(only256.find("ECDHE-ECDSA-AES128-GCM-SHA256:"), 30, "");
  server.rewrite_config(only256);
  server.process->signal(SIGHUP);
  // (The reload is in force once a fresh handshake with the removed cipher fails.)
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (s_client(server.port, aes128).served() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  const SClient after = s_client(server.port, resume);
  EXPECT_FALSE(after.has("Reused,")) << after.out;
  EXPECT_TRUE(after.has("ECDHE-ECDSA-AES256-GCM-SHA384")) << after.out;
  EXPECT_TRUE(after.served()) << after.out;
}

// A session begun for one server name (one certificate) resumes for that name only: a ticket
// from "localhost" offered with SNI api.example.test got the localhost certificate's session.
TEST(TlsOpenssl, SessionsResumeOnlyUnderTheCertificateTheyBeganWith) {
  WsbridgeInstance server(server_config(""));
  const std::string dir = ::testing::TempDir();
  for (const std::string v : {"-tls1_2", "-tls1_3"}) {
    SCOPED_TRACE(v);
    const std::string session = dir + "/wsbridge-sni-session" + v + ".pem";
    ASSERT_TRUE(
        s_client(server.port, {v, "-servername", "localhost", "-sess_out", session}).served());
    const SClient same =
        s_client(server.port, {v, "-servername", "localhost", "-sess_in", session});
    EXPECT_TRUE(same.has("Reused,")) << same.out;
    const SClient other =
        s_client(server.port, {v, "-servername", "api.example.test", "-sess_in", session});
    EXPECT_FALSE(other.has("Reused,")) << other.out;
    EXPECT_TRUE(other.has("CN = api.example.test") || other.has("CN=api.example.test"))
        << other.out;
    EXPECT_TRUE(other.served());
  }
}

// A TLS 1.2 client that takes no tickets resumes by session id, whichever service thread its
// reconnection lands on. Each thread kept a cache of its own: with two threads about half of
// the reconnections were full handshakes.
TEST(TlsOpenssl, SessionIdsResumeOnEveryServiceThread) {
  WsbridgeInstance server("[server]\nthreads = 2\n" + server_config(""));
  const std::string session = ::testing::TempDir() + "/wsbridge-session-id.pem";
  ASSERT_TRUE(s_client(server.port, {"-tls1_2", "-no_ticket", "-sess_out", session}).served());
  int reused = 0;
  for (int i = 0; i < 10; ++i) {
    const SClient again = s_client(server.port, {"-tls1_2", "-no_ticket", "-sess_in", session});
    EXPECT_TRUE(again.served()) << again.out;
    if (again.has("Reused,")) ++reused;
  }
  EXPECT_EQ(reused, 10) << "session ids resumed only on the thread that issued them";
}

TEST(TlsOpenssl, HttpsOnTheSamePortWithHstsAndARedirectingListener) {
  WsbridgeInstance server(server_config("hsts = \"max-age=31536000\"\n", R"(
[[listeners]]
address = "127.0.0.1"
port = ${PORT2}
redirect_to_https = ${PORT}
)"));
  ClientOptions https = server.client("/healthz");
  https.tls = trust_test_ca();
  const HttpResponse health = http_get(https);
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.header("Strict-Transport-Security"), "max-age=31536000");
  // wss:// on the same port.
  ClientOptions wss = server.client("/echo");
  wss.tls = trust_test_ca();
  WsClient ws = WsClient::connect(wss);
  ws.send_text("same port");
  EXPECT_EQ(ws.read_message().data, "same port");
  // The plain listener answers everything, upgrades too, with a 301 to https.
  const HttpResponse moved = http_get("127.0.0.1", server.port2, "/app/page?x=1",
                                      {{"Host", "example.test:" + std::to_string(server.port2)}});
  EXPECT_EQ(moved.status, 301);
  EXPECT_EQ(moved.header("Location"),
            "https://example.test:" + std::to_string(server.port) + "/app/page?x=1");
  ClientOptions plain_ws = server.client("/echo");
  plain_ws.port = server.port2;
  try {
    WsClient::connect(plain_ws);
    ADD_FAILURE() << "a plain upgrade was accepted on the redirecting listener";
  } catch (const HandshakeError& e) {
    EXPECT_EQ(e.response().status, 301);
  }
}

}  // namespace
}  // namespace wsbridge::testing
