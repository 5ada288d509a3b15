// What a listener's [listeners.tls] table says, apart from the certificates themselves.
#pragma once

#include <string>

namespace wsbridge::tls {

// Mozilla's "intermediate" TLS 1.2 list: forward secrecy and AEAD only. (TLS 1.3 suites are
// OpenSSL's defaults unless `ciphersuites` is given.)
inline constexpr const char* kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

enum class MinVersion { kTls12, kTls13 };
enum class ClientCertMode { kNone, kOptional, kRequired };

struct TlsSettings {
  MinVersion min_version = MinVersion::kTls12;
  std::string ciphers = kDefaultCiphers;
  std::string ciphersuites;  // empty: OpenSSL's default TLS 1.3 suites
  std::string hsts;          // Strict-Transport-Security value; empty: none
  ClientCertMode client_cert = ClientCertMode::kNone;
  bool watch = false;  // reload when the certificate files change
};

}  // namespace wsbridge::tls
