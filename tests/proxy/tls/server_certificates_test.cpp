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

// A reload: the vhost's context (where every handshake starts) becomes the new set's default.
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
