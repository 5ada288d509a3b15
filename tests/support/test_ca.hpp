// Test certificates generated at test time (OpenSSL 3 API, EC P-256 keys: fast to make), so no
// key material is checked in and nothing expires in the repository. A TestCa signs leaf
// certificates with any validity window and SANs; TestPki is the set the TLS tests share.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace wsbridge::testing {

// One issued certificate, written as PEM files into the test process' temp_dir().
struct IssuedCert {
  std::string cert_file;  // leaf only (a test that needs the chain concatenates ca.cert_pem)
  std::string key_file;
  std::string cert_pem;
  std::string key_pem;
  std::string subject;      // one line, OpenSSL's RFC 2253 form: "CN=localhost"
  std::string serial_hex;   // uppercase hex, as openssl x509 -serial prints it
  std::string fingerprint;  // SHA-256 of the DER certificate, lowercase hex without colons
  long long not_after = 0;  // Unix time
};

struct CertSpec {
  std::string cn;
  // "DNS:name", "IP:1.2.3.4", "URI:urn:x", "email:a@b" (OpenSSL's subjectAltName syntax).
  std::vector<std::string> sans;
  // Validity relative to now, in seconds: an expired certificate is {-2 days, -1 day}.
  long not_before = -3600;
  long not_after = 30L * 24 * 3600;
  bool client = false;  // extendedKeyUsage clientAuth instead of serverAuth
  bool rsa = false;     // an RSA 2048 key instead of P-256 (a certificate of another key type)
  // Further CN entries after `cn` in the subject ("CN=a, CN=b": which one names it is unclear).
  std::vector<std::string> more_cns = {};
};

class TestCa {
 public:
  // A self-signed CA (basicConstraints CA:TRUE) named `cn`; its files land in temp_dir().
  explicit TestCa(const std::string& cn);
  ~TestCa();
  TestCa(TestCa&&) noexcept;
  TestCa& operator=(TestCa&&) noexcept;

  IssuedCert issue(const CertSpec& spec) const;
  const std::string& cert_file() const { return self_.cert_file; }
  const std::string& cert_pem() const { return self_.cert_pem; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  IssuedCert self_;
};

// The base64 of SHA-256 over a key's DER SubjectPublicKeyInfo, which is what Chromium's
// --ignore-certificate-errors-spki-list takes. Accepts a PEM private key or certificate.
std::string spki_sha256_base64(const std::string& pem);

// Everything the TLS tests need, generated once per test process (about 20 ms).
struct TestPki {
  TestCa ca{"wsbridge test CA"};
  TestCa other_ca{"wsbridge other CA"};    // trusted by nobody: its server cert must be refused
  TestCa client_ca{"wsbridge client CA"};  // client_ca_file of the mTLS listeners
  // CN=localhost, SAN DNS:localhost, IP:127.0.0.1: the default certificate.
  IssuedCert server;
  // CN=api.example.test, SAN api.example.test and *.example.test: the SNI certificate.
  IssuedCert api;
  // CN=localhost again but a different key, serial and notAfter (60 days): the replacement at
  // reload.
  IssuedCert server_renewed;
  IssuedCert expired;        // notAfter yesterday
  IssuedCert not_yet_valid;  // notBefore tomorrow
  // server's certificate with renewed's key: the pair does not match.
  IssuedCert mismatched;
  IssuedCert foreign_server;  // CN=localhost signed by other_ca
  // CN=device-1, SAN URI:urn:dev:device-1 and email:device-1@example.test, from client_ca.
  IssuedCert device;
  IssuedCert device_wrong_ca;  // CN=device-1 from other_ca
  IssuedCert device_2;         // CN=device-2 from client_ca

  static const TestPki& get();

 private:
  TestPki();
};

}  // namespace wsbridge::testing
