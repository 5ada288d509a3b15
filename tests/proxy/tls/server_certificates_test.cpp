// A TLS listener's certificates (proxy/src/tls/server_certificates.*): the choice by SNI, and
// real handshakes through the ClientHello callback (protocol floor, client certificates).
#include "tls/server_certificates.hpp"

#include <gtest/gtest.h>
#include <openssl/x509.h>

#include <chrono>

#include "proxy/tls/tls_pair.hpp"
#include "tls/client_identity.hpp"

namespace wsbridge {
namespace {

using testing::client_side;
using testing::IssuedCert;
using testing::TestPki;
using testing::TlsPair;

tls::NamedCertificate named(const IssuedCert& cert, std::vector<std::string> names = {}) {
  tls::PairResult r =
      tls::load_certificate_pair(cert.cert_file, cert.key_file, std::chrono::system_clock::now());
  EXPECT_TRUE(r.pair) << r.error.message;
  return tls::NamedCertificate{std::move(names), cert.cert_file, std::move(r.pair)};
}

// The default (localhost) and the api certificate for api.example.test and *.example.test.
std::shared_ptr<const tls::ServerCertificates> two_certificates(tls::TlsSettings settings = {}) {
  const TestPki& pki = TestPki::get();
  std::vector<tls::NamedCertificate> certs;
  certs.push_back(named(pki.server));
  certs.push_back(named(pki.api, {"api.example.test", "*.example.test"}));
  std::vector<tls::X509Ptr> cas;
  if (settings.client_cert != tls::ClientCertMode::kNone) {
    std::string error;
    cas = tls::load_ca_file(pki.client_ca.cert_file(), error);
    EXPECT_FALSE(cas.empty()) << error;
  }
  return std::make_shared<const tls::ServerCertificates>("127.0.0.1:443", std::move(settings),
                                                         std::move(certs), cas);
}

std::string subject_cn(X509* cert) {
  if (cert == nullptr) return "(none)";
  char cn[256] = "";
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  return cn;
}

std::string chosen_for(const tls::ServerCertificates& certs, std::string_view name) {
  return subject_cn(SSL_CTX_get0_certificate(certs.select(name)));
}

TEST(ServerCertificatesTest, ChoosesExactNameThenWildcardThenDefault) {
  const auto certs = two_certificates();
  EXPECT_EQ(chosen_for(*certs, "api.example.test"), "api.example.test");
  EXPECT_EQ(chosen_for(*certs, "API.Example.TEST"), "api.example.test");  // names are caseless
  EXPECT_EQ(chosen_for(*certs, "www.example.test"), "api.example.test");  // *.example.test
  EXPECT_EQ(chosen_for(*certs, "a.b.example.test"), "localhost");         // a wildcard is one label
  EXPECT_EQ(chosen_for(*certs, "example.test"), "localhost");
  EXPECT_EQ(chosen_for(*certs, "other.test"), "localhost");
  EXPECT_EQ(chosen_for(*certs, ""), "localhost");
  // The fully qualified spelling (a trailing dot) names the same host.
  EXPECT_EQ(chosen_for(*certs, "api.example.test."), "api.example.test");
  EXPECT_EQ(chosen_for(*certs, "www.example.test."), "api.example.test");
  EXPECT_EQ(chosen_for(*certs, "."), "localhost");
}

TEST(ServerCertificatesTest, HandshakesGetTheCertificateTheirServerNameChose) {
  const auto certs = two_certificates();
  for (const auto& [sni, cn] :
       {std::pair<std::string, std::string>{"api.example.test", "api.example.test"},
        {"localhost", "localhost"},
        {"", "localhost"}}) {
    TlsPair pair(certs, client_side(sni, 0, nullptr, TestPki::get().ca.cert_file()));
    ASSERT_TRUE(pair.handshake()) << "SNI \"" << sni << "\"";
    EXPECT_EQ(subject_cn(SSL_get0_peer_certificate(pair.client)), cn) << "SNI \"" << sni << "\"";
    EXPECT_EQ(SSL_get_verify_result(pair.client), X509_V_OK);  // the chain the client trusts
  }
}

TEST(ServerCertificatesTest, TheProtocolFloorIsTheSets) {
  tls::TlsSettings only13;
  only13.min_version = tls::MinVersion::kTls13;
  {
    TlsPair pair(two_certificates(only13), client_side("localhost", TLS1_2_VERSION));
    EXPECT_FALSE(pair.handshake());
  }
  {
    TlsPair pair(two_certificates(only13), client_side("localhost", 0));
    ASSERT_TRUE(pair.handshake());
    EXPECT_EQ(SSL_version(pair.server), TLS1_3_VERSION);
  }
  {
    TlsPair pair(two_certificates(), client_side("localhost", TLS1_2_VERSION));
    ASSERT_TRUE(pair.handshake());
    EXPECT_EQ(SSL_version(pair.server), TLS1_2_VERSION);
  }
  {
    TlsPair pair(two_certificates(), client_side("localhost", TLS1_1_VERSION));
    EXPECT_FALSE(pair.handshake());
  }
}

TEST(ServerCertificatesTest, RequiredClientCertificatesAreVerifiedAndNamed) {
  const TestPki& pki = TestPki::get();
  tls::TlsSettings required;
  required.client_cert = tls::ClientCertMode::kRequired;
  {
    TlsPair pair(two_certificates(required), client_side("localhost", 0, &pki.device));
    ASSERT_TRUE(pair.handshake());
    ASSERT_TRUE(pair.round_trip());
    const auto who = tls::verified_client_certificate(pair.server);
    ASSERT_TRUE(who);
    EXPECT_EQ(who->cn, "device-1");
    EXPECT_EQ(who->fingerprint, pki.device.fingerprint);
    EXPECT_NE(std::find(who->san.begin(), who->san.end(), "URI:urn:dev:device-1"), who->san.end());
    EXPECT_NE(std::find(who->san.begin(), who->san.end(), "email:device-1@example.test"),
              who->san.end());
  }
  {  // none at all
    TlsPair pair(two_certificates(required), client_side("localhost", 0));
    EXPECT_FALSE(pair.handshake() && pair.round_trip());
  }
  {  // from a CA the listener does not trust
    TlsPair pair(two_certificates(required), client_side("localhost", 0, &pki.device_wrong_ca));
    EXPECT_FALSE(pair.handshake() && pair.round_trip());
    EXPECT_FALSE(tls::verified_client_certificate(pair.server));
  }
}

TEST(ServerCertificatesTest, OptionalClientCertificatesMayBeLeftOut) {
  const TestPki& pki = TestPki::get();
  tls::TlsSettings optional;
  optional.client_cert = tls::ClientCertMode::kOptional;
  {
    TlsPair pair(two_certificates(optional), client_side("localhost", 0));
    ASSERT_TRUE(pair.handshake());
    ASSERT_TRUE(pair.round_trip());
    EXPECT_FALSE(tls::verified_client_certificate(pair.server));
  }
  {
    TlsPair pair(two_certificates(optional), client_side("localhost", 0, &pki.device_2));
    ASSERT_TRUE(pair.handshake());
    ASSERT_TRUE(pair.round_trip());
    const auto who = tls::verified_client_certificate(pair.server);
    ASSERT_TRUE(who);
    EXPECT_EQ(who->cn, "device-2");
  }
  {  // one that does not verify is refused, not ignored
    TlsPair pair(two_certificates(optional), client_side("localhost", 0, &pki.device_wrong_ca));
    EXPECT_FALSE(pair.handshake() && pair.round_trip());
  }
}

TEST(ServerCertificatesTest, WithoutClientCertificatesNoneIsAskedFor) {
  TlsPair pair(two_certificates(), client_side("localhost", 0, &TestPki::get().device));
  ASSERT_TRUE(pair.handshake());
  ASSERT_TRUE(pair.round_trip());
  EXPECT_FALSE(tls::verified_client_certificate(pair.server));
}

// A reload: the vhost's context (where every handshake starts, and which lws may look at) is set
// up like the new set's default.
TEST(ServerCertificatesTest, AdoptingASetReconfiguresTheVhostContext) {
  const TestPki& pki = TestPki::get();
  SSL_CTX* vhost = SSL_CTX_new(TLS_server_method());
  tls::TlsSlot slot;
  slot.current = two_certificates();
  tls::prepare_vhost_context(vhost, &slot);
  EXPECT_EQ(subject_cn(SSL_CTX_get0_certificate(vhost)), "localhost");
  EXPECT_EQ(SSL_CTX_get_min_proto_version(vhost), TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_get_verify_mode(vhost), SSL_VERIFY_NONE);

  tls::TlsSettings s;
  s.min_version = tls::MinVersion::kTls13;
  s.client_cert = tls::ClientCertMode::kRequired;
  std::vector<tls::NamedCertificate> certs;
  certs.push_back(named(pki.api));
  std::string error;
  const auto cas = tls::load_ca_file(pki.client_ca.cert_file(), error);
  slot.adopt(std::make_shared<const tls::ServerCertificates>("x", s, std::move(certs), cas));
  EXPECT_EQ(subject_cn(SSL_CTX_get0_certificate(vhost)), "api.example.test");
  EXPECT_EQ(SSL_CTX_get_min_proto_version(vhost), TLS1_3_VERSION);
  EXPECT_EQ(SSL_CTX_get_verify_mode(vhost), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
  EXPECT_EQ(sk_X509_NAME_num(SSL_CTX_get_client_CA_list(vhost)), 1);
  SSL_CTX_free(vhost);
}

// A connection accepted before a reload sends its ClientHello after it: the new set's policy
// applies. (It kept the verify mode its SSL copied from the vhost at accept: a client that held a
// silent connection open got through a change from "optional" to "required" without a
// certificate, and its session ticket then resumed without one too.)
TEST(ServerCertificatesTest, AReloadAppliesToConnectionsAcceptedBeforeIt) {
  tls::TlsSettings optional;
  optional.client_cert = tls::ClientCertMode::kOptional;
  tls::TlsSettings required;
  required.client_cert = tls::ClientCertMode::kRequired;
  for (const std::string sni : {"", "localhost", "api.example.test"}) {
    TlsPair pair(two_certificates(optional), client_side(sni, 0));
    pair.reload(two_certificates(required));
    EXPECT_FALSE(pair.handshake() && pair.round_trip()) << "SNI \"" << sni << "\"";
  }
  tls::TlsSettings only13;
  only13.min_version = tls::MinVersion::kTls13;
  TlsPair pair(two_certificates(), client_side("", TLS1_2_VERSION));
  pair.reload(two_certificates(only13));
  EXPECT_FALSE(pair.handshake());
}

// A reload from an EC certificate to an RSA one, and back, serves the new one to every client.
// (A context keeps one certificate per key type: the vhost's kept the old type's, and clients
// that accept both were served the certificate the reload replaced.)
TEST(ServerCertificatesTest, AReloadToAnotherKeyTypeServesTheNewCertificate) {
  const TestPki& pki = TestPki::get();
  const IssuedCert rsa =
      pki.ca.issue({.cn = "rsa-localhost", .sans = {"DNS:localhost"}, .rsa = true});
  auto only = [](const IssuedCert& cert) {
    std::vector<tls::NamedCertificate> certs;
    certs.push_back(named(cert));
    return std::make_shared<const tls::ServerCertificates>(
        "x", tls::TlsSettings{}, std::move(certs), std::vector<tls::X509Ptr>{});
  };
  TlsPair pair(only(pki.server), client_side("localhost", 0, nullptr, pki.ca.cert_file()));
  pair.reload(only(rsa));
  pair.accept_again();
  ASSERT_TRUE(pair.handshake());
  EXPECT_EQ(subject_cn(SSL_get0_peer_certificate(pair.client)), "rsa-localhost");

  TlsPair back(only(rsa), client_side("", 0, nullptr, pki.ca.cert_file()));
  back.reload(only(pki.server));
  back.accept_again();
  ASSERT_TRUE(back.handshake());
  EXPECT_EQ(subject_cn(SSL_get0_peer_certificate(back.client)), "localhost");
}

// Certificates valid past 2262 (RFC 5280's "no expiry", 99991231235959Z, on device and internal
// CA certificates) are valid: a nanosecond clock overflowed, and they were "expired in 1816".
TEST(CertificatePairTest, ANotAfterFarInTheFutureIsNotAnExpiry) {
  const TestPki& pki = TestPki::get();
  const auto now = std::chrono::system_clock::now();
  const long long year_9999_end = 253402300799;  // 9999-12-31 23:59:59 UTC
  const long to_9999 = static_cast<long>(year_9999_end - std::chrono::system_clock::to_time_t(now));
  const IssuedCert forever =
      pki.ca.issue({.cn = "forever", .sans = {}, .not_before = -3600, .not_after = to_9999});
  tls::PairResult r = tls::load_certificate_pair(forever.cert_file, forever.key_file, now);
  ASSERT_TRUE(r.pair) << r.error.message;
  EXPECT_EQ(r.pair->not_after.time_since_epoch().count(), year_9999_end);
}

// A certificate or key path that names no regular file is refused at once: /dev/zero filled
// memory until the process died, a FIFO blocked the reload until something wrote to it.
TEST(CertificatePairTest, WhatIsNoRegularFileIsRefusedAtOnce) {
  const IssuedCert& server = TestPki::get().server;
  for (const char* path : {"/dev/zero", "/dev/null", "/proc/self"}) {
    tls::PairResult r =
        tls::load_certificate_pair(path, server.key_file, std::chrono::system_clock::now());
    EXPECT_FALSE(r.pair) << path;
    EXPECT_NE(r.error.message.find("cannot read"), std::string::npos) << r.error.message;
    std::string error;
    EXPECT_TRUE(tls::load_ca_file(path, error).empty()) << path;
    EXPECT_NE(error.find("cannot read"), std::string::npos) << error;
  }
}

TEST(ServerCertificatesTest, AnUnknownCipherListIsRefusedByName) {
  tls::TlsSettings s;
  s.ciphers = "NO-SUCH-CIPHER";
  try {
    two_certificates(s);
    FAIL() << "accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(std::string(e.what()).starts_with("ciphers:")) << e.what();
  }
}

}  // namespace
}  // namespace wsbridge
