// Who a verified client certificate (mTLS) says the client is: its subject CN, its
// subjectAltNames and its SHA-256 fingerprint. The claims `cert.cn`, `cert.san` and
// `cert.fingerprint` of every connection that presented one come from here.
#pragma once

#include <openssl/types.h>

#include <optional>
#include <string>
#include <vector>

namespace wsbridge::tls {

struct ClientCertificate {
  std::string cn;                // subject commonName ("" when it has none)
  std::vector<std::string> san;  // "DNS:x", "email:y", "URI:z", "IP:1.2.3.4"
  std::string fingerprint;       // SHA-256 of the DER certificate, lowercase hex
};

// The certificate the client presented on `ssl`, when the handshake verified it against the
// listener's client_ca_file; nullopt without one (or without TLS: ssl == nullptr).
std::optional<ClientCertificate> verified_client_certificate(SSL* ssl);
// Only its fingerprint ("" without one): what a fallback session's token is bound to.
std::string verified_client_fingerprint(SSL* ssl);

}  // namespace wsbridge::tls
