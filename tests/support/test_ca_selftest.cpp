// Self-test of the TLS test support (test_ca.*, the TLS client of ws_test_client) against
// `openssl verify` and `openssl s_server`, a TLS server nobody on this project wrote: if these
// fail, the TLS tests against wsbridge mean nothing.
#include <gtest/gtest.h>

#include <csignal>

#include "support/process.hpp"
#include "support/test_ca.hpp"
#include "support/tls_config.hpp"
#include "support/ws_test_client.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

// Runs a command to its end; returns its exit status and output.
std::pair<int, std::string> run(const std::vector<std::string>& argv) {
  auto child = ChildProcess::spawn(argv);
  const auto status = child.wait_exit(20s);
  if (!status) child.signal(SIGKILL);
  return {status.value_or(-1), child.output()};
}

int verify(const std::string& ca, const IssuedCert& cert) {
  return run({"openssl", "verify", "-CAfile", ca, cert.cert_file}).first;
}

TEST(TestCaSelftest, CertificatesVerifyOnlyWhereTheyShould) {
  const TestPki& pki = TestPki::get();
  EXPECT_EQ(verify(pki.ca.cert_file(), pki.server), 0);
  EXPECT_EQ(verify(pki.ca.cert_file(), pki.api), 0);
  EXPECT_EQ(verify(pki.ca.cert_file(), pki.server_renewed), 0);
  EXPECT_NE(verify(pki.ca.cert_file(), pki.expired), 0);
  EXPECT_NE(verify(pki.ca.cert_file(), pki.not_yet_valid), 0);
  EXPECT_NE(verify(pki.ca.cert_file(), pki.foreign_server), 0);
  EXPECT_EQ(verify(pki.client_ca.cert_file(), pki.device), 0);
  EXPECT_NE(verify(pki.client_ca.cert_file(), pki.device_wrong_ca), 0);
  EXPECT_NE(pki.server.serial_hex, pki.server_renewed.serial_hex);
  EXPECT_NE(pki.server.subject.find("CN=localhost"), std::string::npos) << pki.server.subject;
  const auto text = run({"openssl", "x509", "-noout", "-ext", "subjectAltName,extendedKeyUsage",
                         "-in", pki.device.cert_file});
  EXPECT_NE(text.second.find("URI:urn:dev:device-1"), std::string::npos) << text.second;
  EXPECT_NE(text.second.find("email:device-1@example.test"), std::string::npos) << text.second;
  EXPECT_NE(text.second.find("Client Authentication"), std::string::npos) << text.second;
}

TEST(TestCaSelftest, SpkiHashMatchesOpensslsPipeline) {
  const TestPki& pki = TestPki::get();
  const auto out = run({"sh", "-c",
                        "openssl pkey -in '" + pki.server.key_file +
                            "' -pubout -outform der | openssl dgst -sha256 -binary | base64"});
  ASSERT_EQ(out.first, 0) << out.second;
  EXPECT_EQ(spki_sha256_base64(pki.server.key_pem) + "\n", out.second);
  EXPECT_EQ(spki_sha256_base64(pki.server.cert_pem), spki_sha256_base64(pki.server.key_pem));
  EXPECT_NE(spki_sha256_base64(pki.server.key_pem), spki_sha256_base64(pki.api.key_pem));
  const auto fp =
      run({"openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", pki.device.cert_file});
  std::string expected;  // "sha256 Fingerprint=AB:CD:..." -> "abcd..."
  for (char c : fp.second.substr(fp.second.find('=') + 1)) {
    if (std::isxdigit(static_cast<unsigned char>(c)) != 0) {
      expected += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  EXPECT_EQ(pki.device.fingerprint, expected);
}

// openssl s_server -www on a free port: default certificate, the api one by SNI, and client
// certificates from the client CA.
struct SServer {
  explicit SServer(std::vector<std::string> extra) : port(free_tcp_port()) {
    const TestPki& pki = TestPki::get();
    std::vector<std::string> argv = {
        "openssl",     "s_server",           "-accept", std::to_string(port),
        "-cert",       pki.server.cert_file, "-key",    pki.server.key_file,
        "-servername", "api.example.test",   "-cert2",  pki.api.cert_file,
        "-key2",       pki.api.key_file,     "-www"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process.emplace(ChildProcess::spawn(argv));
    if (!wait_port_open("127.0.0.1", port, 10s)) ADD_FAILURE() << process->output();
  }
  uint16_t port;
  std::optional<ChildProcess> process;
};

HttpResponse get_root(uint16_t port, const TlsOptions& tls, TlsInfo* info = nullptr) {
  TcpConn conn = TcpConn::connect("127.0.0.1", port, tls);
  if (info != nullptr) *info = conn.tls_info();
  conn.send_all("GET / HTTP/1.0\r\n\r\n");
  return conn.read_http_response();
}

TEST(TestCaSelftest, TlsClientVerifiesPicksSniAndSendsClientCertificates) {
  const TestPki& pki = TestPki::get();
  SServer plain({});
  TlsInfo info;
  EXPECT_EQ(get_root(plain.port, trust_test_ca(), &info).status, 200);
  EXPECT_EQ(info.peer_subject, pki.server.subject);
  EXPECT_EQ(info.peer_serial, pki.server.serial_hex);
  EXPECT_EQ(get_root(plain.port, trust_test_ca("api.example.test"), &info).status, 200);
  EXPECT_EQ(info.peer_serial, pki.api.serial_hex);
  // Verification is real: another CA, or a name the certificate does not carry, fails.
  TlsOptions other = trust_test_ca();
  other.ca_file = pki.other_ca.cert_file();
  EXPECT_THROW(get_root(plain.port, other), TlsError);
  EXPECT_THROW(get_root(plain.port, trust_test_ca("elsewhere.test")), TlsError);
  TlsOptions old = trust_test_ca();
  old.max_version = 0x0302;  // TLS1_1_VERSION: s_server (at its security level 1) refuses it
  EXPECT_THROW(get_root(plain.port, old), TlsError);

  SServer mtls({"-Verify", "1", "-verify_return_error", "-CAfile", pki.client_ca.cert_file()});
  const std::string page = get_root(mtls.port, with_client_cert(trust_test_ca(), pki.device)).body;
  EXPECT_NE(page.find("device-1"), std::string::npos) << page;  // -www prints the peer
  bool refused = false;
  try {
    refused = get_root(mtls.port, trust_test_ca()).status != 200;
  } catch (const std::exception&) {
    refused = true;  // TLS 1.3: the alert arrives on the first read
  }
  EXPECT_TRUE(refused);
}

}  // namespace
}  // namespace wsbridge::testing
