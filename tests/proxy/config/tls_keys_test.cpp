// [listeners.tls] (proxy/src/config/tls_keys.*): every certificate file checked when the config
// loads, and each problem reported at the key naming the file.
#include "config/tls_keys.hpp"

#include <gtest/gtest.h>

#include "proxy/config/config_fixture.hpp"
#include "support/process.hpp"
#include "support/test_ca.hpp"

namespace wsbridge {
namespace {

using testing::IssuedCert;
using testing::TestPki;

class TlsKeysTest : public testing::ConfigTest {
 protected:
  // A TLS listener on line 1..; `tls_lines` go into its [listeners.tls] table (line 5 on).
  static std::string config(const std::string& tls_lines, const std::string& more = "") {
    return "[[listeners]]\n"
           "port = 8443\n"
           "[listeners.tls]\n"
           "# certificates\n" +
           tls_lines + more +
           "\n[[routes]]\n"
           "path = \"/echo\"\n"
           "adapter = \"echo\"\n";
  }
  static std::string pair_lines(const IssuedCert& cert) {
    return "cert_file = \"" + cert.cert_file + "\"\nkey_file = \"" + cert.key_file + "\"\n";
  }
  static std::string pair_lines(const std::string& cert, const std::string& key) {
    return "cert_file = \"" + cert + "\"\nkey_file = \"" + key + "\"\n";
  }
};

TEST_F(TlsKeysTest, AGoodPairMakesATlsListener) {
  const ServerConfig c = parse(config(pair_lines(TestPki::get().server)));
  ASSERT_TRUE(c.listeners[0].tls);
  EXPECT_EQ(c.listeners[0].tls->settings().min_version, tls::MinVersion::kTls12);
  EXPECT_EQ(c.listeners[0].tls->settings().client_cert, tls::ClientCertMode::kNone);
  EXPECT_EQ(c.listeners[0].tls->certificate_count(), 1u);
  EXPECT_EQ(c.listeners[0].tls_files.size(), 2u);
}

TEST_F(TlsKeysTest, EveryKeyIsRead) {
  const TestPki& pki = TestPki::get();
  const ServerConfig c = parse(
      config(pair_lines(pki.server) +
             "min_version = \"1.3\"\nciphersuites = \"TLS_AES_128_GCM_SHA256\"\n"
             "ciphers = \"ECDHE-RSA-AES128-GCM-SHA256\"\nhsts = \"max-age=600\"\nwatch = true\n"
             "client_ca_file = \"" +
             pki.client_ca.cert_file() +
             "\"\nclient_cert = \"optional\"\n"
             "[[listeners.tls.sni]]\nserver_names = [\"api.example.test\", \"*.example.test\"]\n" +
             pair_lines(pki.api)));
  const tls::TlsSettings& s = c.listeners[0].tls->settings();
  EXPECT_EQ(s.min_version, tls::MinVersion::kTls13);
  EXPECT_EQ(s.ciphersuites, "TLS_AES_128_GCM_SHA256");
  EXPECT_EQ(s.ciphers, "ECDHE-RSA-AES128-GCM-SHA256");
  EXPECT_EQ(s.hsts, "max-age=600");
  EXPECT_TRUE(s.watch);
  EXPECT_EQ(s.client_cert, tls::ClientCertMode::kOptional);
  EXPECT_EQ(c.listeners[0].tls->certificate_count(), 2u);
  EXPECT_EQ(c.listeners[0].tls_files.size(), 5u);  // two pairs and the CA file
}

TEST_F(TlsKeysTest, AClientCaFileAloneRequiresCertificates) {
  const TestPki& pki = TestPki::get();
  const ServerConfig c = parse(
      config(pair_lines(pki.server) + "client_ca_file = \"" + pki.client_ca.cert_file() + "\"\n"));
  EXPECT_EQ(c.listeners[0].tls->settings().client_cert, tls::ClientCertMode::kRequired);
}

TEST_F(TlsKeysTest, UnreadableFilesAreErrorsAtTheirKey) {
  const TestPki& pki = TestPki::get();
  EXPECT_EQ(error_of(config(pair_lines("/nonexistent/cert.pem", pki.server.key_file))),
            "test.toml:5:13: cannot read /nonexistent/cert.pem: No such file or directory");
  EXPECT_EQ(error_of(config(pair_lines(pki.server.cert_file, "/nonexistent/key.pem"))),
            "test.toml:6:12: cannot read /nonexistent/key.pem: No such file or directory");
}

TEST_F(TlsKeysTest, FilesThatAreNotPemAreErrorsAtTheirKey) {
  const TestPki& pki = TestPki::get();
  const std::string junk = testing::write_temp_file("junk.pem", "not a certificate\n");
  EXPECT_EQ(
      error_of(config(pair_lines(junk, pki.server.key_file))),
      "test.toml:5:13: " + junk + " holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")");
  const std::string e = error_of(config(pair_lines(pki.server.cert_file, junk)));
  EXPECT_TRUE(e.starts_with("test.toml:6:12: " + junk + " holds no unencrypted PEM private key"))
      << e;
  // A certificate where the key should be is no key either.
  EXPECT_TRUE(error_of(config(pair_lines(pki.server.cert_file, pki.server.cert_file)))
                  .starts_with("test.toml:6:12: "));
}

// A chain with the issuer first (as some CAs hand it out) was reported as a key that does not
// belong to the certificate: it is the order that is wrong, and the error says so.
TEST_F(TlsKeysTest, AChainInTheWrongOrderIsNamedSo) {
  const TestPki& pki = TestPki::get();
  const std::string reversed =
      testing::write_temp_file("reversed.pem", pki.ca.cert_pem() + pki.server.cert_pem);
  const std::string e = error_of(config(pair_lines(reversed, pki.server.key_file)));
  EXPECT_TRUE(e.starts_with("test.toml:5:13: the certificates in " + reversed +
                            " are in the wrong order: the key in " + pki.server.key_file +
                            " belongs to certificate 2 ("))
      << e;
  EXPECT_TRUE(e.ends_with("the server's own certificate must come first, then its issuers")) << e;
  // A key of no certificate in the file is still that.
  const std::string other = error_of(config(pair_lines(reversed, pki.api.key_file)));
  EXPECT_TRUE(other.starts_with("test.toml:6:12: the private key in " + pki.api.key_file +
                                " does not belong to the certificate in "))
      << other;
}

// A client_ca_file whose certificates have all expired refuses every client certificate; it
// loaded without a word, and each handshake failed. An expired one beside a valid one (a CA
// being rolled over) is fine.
TEST_F(TlsKeysTest, AClientCaFileWithNothingValidInItIsAnError) {
  const TestPki& pki = TestPki::get();
  const std::string expired = testing::write_temp_file("expired-ca.pem", pki.expired.cert_pem);
  const std::string e =
      error_of(config(pair_lines(pki.server) + "client_ca_file = \"" + expired + "\"\n"));
  EXPECT_TRUE(e.starts_with("test.toml:7:18: " + expired +
                            ": no certificate in it is valid now, so no client certificate can "
                            "verify ("))
      << e;
  EXPECT_NE(e.find(" expired on "), std::string::npos) << e;
  const std::string future = testing::write_temp_file("future-ca.pem", pki.not_yet_valid.cert_pem);
  EXPECT_NE(error_of(config(pair_lines(pki.server) + "client_ca_file = \"" + future + "\"\n"))
                .find(" is not valid before "),
            std::string::npos);
  const std::string rolling =
      testing::write_temp_file("rolling-ca.pem", pki.expired.cert_pem + pki.client_ca.cert_pem());
  const ServerConfig c =
      parse(config(pair_lines(pki.server) + "client_ca_file = \"" + rolling + "\"\n"));
  EXPECT_EQ(c.listeners[0].tls->settings().client_cert, tls::ClientCertMode::kRequired);
}

// A chain or CA bundle copied while being written: its last certificate is cut off. Read up to
// the damage, it was accepted, and the server sent its certificate without the issuer.
TEST_F(TlsKeysTest, ACertificateCutShortIsAnErrorNotAShorterChain) {
  const TestPki& pki = TestPki::get();
  const std::string cut = pki.ca.cert_pem().substr(0, 300);
  const std::string chain = testing::write_temp_file("cut-chain.pem", pki.server.cert_pem + cut);
  EXPECT_EQ(error_of(config(pair_lines(chain, pki.server.key_file))),
            "test.toml:5:13: " + chain +
                " has a certificate cut short or damaged after its 1 whole one(s) "
                "(error:04800066:PEM routines::bad end line)");
  const std::string bundle =
      testing::write_temp_file("cut-bundle.pem", pki.client_ca.cert_pem() + cut);
  EXPECT_NE(error_of(config(pair_lines(pki.server) + "client_ca_file = \"" + bundle + "\"\n"))
                .find(bundle + " has a certificate cut short or damaged after its 1 whole one(s)"),
            std::string::npos);
  // The first certificate cut short is no file without a certificate: it was said to be.
  const std::string leaf =
      testing::write_temp_file("cut-leaf.pem", pki.server.cert_pem.substr(0, 200));
  EXPECT_EQ(error_of(config(pair_lines(leaf, pki.server.key_file))),
            "test.toml:5:13: " + leaf +
                " has its first certificate cut short or damaged "
                "(error:04800066:PEM routines::bad end line)");
  // Text after the last certificate (no PEM block in it) is no damage: PEM files carry such.
  const std::string commented = testing::write_temp_file(
      "commented-chain.pem", pki.server.cert_pem + pki.ca.cert_pem() + "# renewed 2026-12-05\n");
  EXPECT_EQ(parse(config(pair_lines(commented, pki.server.key_file)))
                .listeners[0]
                .tls->certificate_count(),
            1u);
}

TEST_F(TlsKeysTest, AKeyOfAnotherCertificateIsAnErrorAtKeyFile) {
  const IssuedCert& m = TestPki::get().mismatched;
  EXPECT_EQ(error_of(config(pair_lines(m))), "test.toml:6:12: the private key in " + m.key_file +
                                                 " does not belong to the certificate in " +
                                                 m.cert_file);
}

TEST_F(TlsKeysTest, CertificatesOutsideTheirValidityAreErrorsAtCertFile) {
  const TestPki& pki = TestPki::get();
  const std::string expired = error_of(config(pair_lines(pki.expired)));
  EXPECT_TRUE(expired.starts_with("test.toml:5:13: the certificate in " + pki.expired.cert_file))
      << expired;
  EXPECT_NE(expired.find(") expired on 20"), std::string::npos) << expired;
  const std::string early = error_of(config(pair_lines(pki.not_yet_valid)));
  EXPECT_NE(early.find(") is not valid before 20"), std::string::npos) << early;
}

TEST_F(TlsKeysTest, SniEntriesAreCheckedLikeTheDefault) {
  const TestPki& pki = TestPki::get();
  const std::string sni = "[[listeners.tls.sni]]\nserver_names = [\"api.example.test\"]\n";
  EXPECT_EQ(error_of(config(pair_lines(pki.server), sni + pair_lines(pki.mismatched))),
            "test.toml:10:12: the private key in " + pki.mismatched.key_file +
                " does not belong to the certificate in " + pki.mismatched.cert_file);
  EXPECT_EQ(error_of(config(
                pair_lines(pki.server),
                "[[listeners.tls.sni]]\nserver_names = [\"bad name!\"]\n" + pair_lines(pki.api))),
            "test.toml:8:16: \"bad name!\" is not a server name (a DNS name such as "
            "\"api.example.com\", or \"*.example.com\")");
  EXPECT_EQ(error_of(config(pair_lines(pki.server),
                            "[[listeners.tls.sni]]\nserver_names = []\n" + pair_lines(pki.api))),
            "test.toml:8:16: 'server_names' must name at least one host");
  // One name in two entries (they match caseless, without a trailing dot): one never chosen.
  const std::string twice = error_of(config(
      pair_lines(pki.server), "[[listeners.tls.sni]]\nserver_names = [\"a.example.test\"]\n" +
                                  pair_lines(pki.api) +
                                  "[[listeners.tls.sni]]\nserver_names = "
                                  "[\"b.example.test\", \"A.EXAMPLE.TEST\"]\n" +
                                  pair_lines(pki.api)));
  EXPECT_EQ(twice,
            "test.toml:12:16: \"A.EXAMPLE.TEST\" is named twice in this listener's sni entries: a "
            "server name picks one certificate");
  // An address: SNI never carries one, the entry would never be chosen.
  EXPECT_EQ(error_of(config(pair_lines(pki.server),
                            "[[listeners.tls.sni]]\nserver_names = "
                            "[\"127.0.0.1\"]\n" +
                                pair_lines(pki.api))),
            "test.toml:8:16: \"127.0.0.1\" is not a server name (a DNS name such as "
            "\"api.example.com\", or \"*.example.com\")");
}

// An entry's certificate must be valid for each of its names (as a browser checks it: the
// subjectAltName, a "*." name for one label): a mismatch passed the check and failed in browsers.
TEST_F(TlsKeysTest, AnSniEntrysCertificateMustCoverItsNames) {
  const TestPki& pki = TestPki::get();  // api: api.example.test and *.example.test
  const auto with_names = [&](const std::string& names) {
    return config(pair_lines(pki.server),
                  "[[listeners.tls.sni]]\nserver_names = " + names + "\n" + pair_lines(pki.api));
  };
  EXPECT_NO_THROW(
      parse(with_names(R"(["API.example.test", "www.example.test", "*.example.test"])")));
  EXPECT_EQ(error_of(with_names(R"(["api.example.test", "b.test"])")),
            "test.toml:8:16: the certificate in " + pki.api.cert_file +
                " is not valid for \"b.test\": browsers would refuse it (its subjectAltName DNS "
                "names: api.example.test, *.example.test)");
  // A wildcard covers one label, and a "*." server name needs a wildcard certificate.
  EXPECT_NE(error_of(with_names(R"(["a.b.example.test"])")).find("not valid for"),
            std::string::npos);
  EXPECT_NE(error_of(with_names(R"(["*.b.example.test"])")).find("not valid for"),
            std::string::npos);
}

TEST_F(TlsKeysTest, SettingsOpenSslRefusesAreErrorsAtTheirKey) {
  const TestPki& pki = TestPki::get();
  EXPECT_EQ(error_of(config(pair_lines(pki.server) + "ciphers = \"NO-SUCH\"\n")),
            "test.toml:7:11: ciphers: OpenSSL accepts none of \"NO-SUCH\"");
  const std::string version = error_of(config(pair_lines(pki.server) + "min_version = \"1.1\"\n"));
  EXPECT_TRUE(version.starts_with("test.toml:7:15: ")) << version;
  EXPECT_EQ(error_of(config(pair_lines(pki.server) + "client_cert = \"required\"\n")),
            "test.toml:7:15: 'client_cert' needs a 'client_ca_file' to verify certificates with");
  EXPECT_EQ(error_of(config(pair_lines(pki.server) + "hsts = \"a\\r\\nX-Evil: 1\"\n")),
            "test.toml:7:8: 'hsts' must be one line of text, with no control characters");
  EXPECT_EQ(error_of(config(pair_lines(pki.server) + "hsts = \"max-age=600\\u0000\"\n")),
            "test.toml:7:8: 'hsts' must be one line of text, with no control characters");
  for (const char* hsts : {"", "includeSubDomains", "max-age", "max-age=abc", "max-age="}) {
    EXPECT_NE(
        error_of(config(pair_lines(pki.server) + "hsts = \"" + hsts + "\"\n"))
            .find("test.toml:7:8: 'hsts' is a Strict-Transport-Security value with a max-age"),
        std::string::npos)
        << hsts;
  }
  EXPECT_EQ(parse(config(pair_lines(pki.server) + "hsts = \"Max-Age=600\"\n"))
                .listeners[0]
                .tls->settings()
                .hsts,
            "Max-Age=600");
  EXPECT_NO_THROW(parse(config(pair_lines(pki.server) + "hsts = 'max-age=\"600\"'\n")));
  // Suites that encrypt nothing or authenticate no server are no TLS listener's.
  for (const char* ciphers : {"eNULL:aNULL", "NULL", "ECDHE-ECDSA-AES128-GCM-SHA256:aNULL"}) {
    const std::string e =
        error_of(config(pair_lines(pki.server) + "ciphers = \"" + ciphers + "\"\n"));
    EXPECT_TRUE(e.starts_with("test.toml:7:11: ciphers: ")) << e;
    EXPECT_NE(e.find("which encrypts nothing or authenticates no server"), std::string::npos) << e;
  }
  // A directory where a file should be says so.
  EXPECT_EQ(error_of(config(pair_lines(pki.server.cert_file, testing::temp_dir()))),
            "test.toml:6:12: cannot read " + testing::temp_dir() + ": it is a directory");
}

TEST_F(TlsKeysTest, RedirectListenersAreNotTls) {
  const ServerConfig c = parse(
      "[[listeners]]\nport = 8080\nredirect_to_https = 8443\n"
      "[[routes]]\npath = \"/echo\"\nadapter = \"echo\"\n");
  EXPECT_EQ(c.listeners[0].redirect_to_https, 8443);
  EXPECT_FALSE(c.listeners[0].tls);
  const std::string both =
      error_of("[[listeners]]\nport = 8443\nredirect_to_https = 8443\n[listeners.tls]\n" +
               pair_lines(TestPki::get().server));
  EXPECT_TRUE(both.starts_with("test.toml:3:21: a listener with a [listeners.tls] table")) << both;
}

TEST_F(TlsKeysTest, UnknownTlsKeysAreErrors) {
  const std::string e =
      error_of(config(pair_lines(TestPki::get().server) + "min_verison = \"1.3\"\n"));
  EXPECT_TRUE(e.starts_with("test.toml:7:1: unknown key 'min_verison'")) << e;
}

}  // namespace
}  // namespace wsbridge
