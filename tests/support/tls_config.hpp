// The TLS tests' shared pieces of configuration: a listener's [listeners.tls] table for a test
// certificate, and client options that trust the test CA (support/test_ca.hpp).
#pragma once

#include <string>

#include "support/test_ca.hpp"
#include "support/ws_test_client.hpp"

namespace wsbridge::testing {

// "[listeners.tls]" with the certificate's files (absolute paths) and `extra` lines after them.
// It belongs right after the "[[listeners]]" table it configures.
inline std::string tls_table(const IssuedCert& cert, const std::string& extra = "") {
  return "[listeners.tls]\ncert_file = \"" + cert.cert_file + "\"\nkey_file = \"" + cert.key_file +
         "\"\n" + extra;
}

// Verifies the server against the test CA; with no server_name, no SNI and the certificate must
// name IP 127.0.0.1.
inline TlsOptions trust_test_ca(const std::string& server_name = "") {
  TlsOptions t;
  t.ca_file = TestPki::get().ca.cert_file();
  t.server_name = server_name;
  return t;
}

inline TlsOptions with_client_cert(TlsOptions t, const IssuedCert& cert) {
  t.cert_file = cert.cert_file;
  t.key_file = cert.key_file;
  return t;
}

}  // namespace wsbridge::testing
