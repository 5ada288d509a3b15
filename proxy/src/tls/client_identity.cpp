#include "tls/client_identity.hpp"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "wsbridge/text.hpp"

namespace wsbridge::tls {
namespace {

std::string text_of(const ASN1_STRING* s) {
  return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
          static_cast<std::size_t>(ASN1_STRING_length(s))};
}

// The subject's CN; "" without one, and "" with several: which of them names the client is a
// guess (OpenSSL finds the first, RFC 6125 and other verifiers take the last), and a CA that
// checked one of them may have signed the other unread. The fingerprint names the client then,
// and ACL templates on {claim.cert.cn} grant such a client nothing.
std::string common_name(X509* cert) {
  const X509_NAME* subject = X509_get_subject_name(cert);
  const int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (i < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, i) >= 0) return "";
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

std::vector<std::string> alt_names(X509* cert) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    switch (n->type) {
      case GEN_DNS:
        out.push_back("DNS:" + text_of(n->d.dNSName));
        break;
      case GEN_EMAIL:
        out.push_back("email:" + text_of(n->d.rfc822Name));
        break;
      case GEN_URI:
        out.push_back("URI:" + text_of(n->d.uniformResourceIdentifier));
        break;
      case GEN_IPADD: {
        const ASN1_OCTET_STRING* ip = n->d.iPAddress;
        char text[INET6_ADDRSTRLEN] = "";
        const int len = ASN1_STRING_length(ip);
        if ((len == 4 || len == 16) &&
            inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(ip), text,
                      sizeof text) != nullptr) {
          out.push_back(std::string("IP:") + text);
        }
        break;
      }
      default:
        break;
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

std::string sha256_hex(X509* cert) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), digest, &len) != 1) return "";
  return text::lower_hex({reinterpret_cast<const char*>(digest), len});
}

}  // namespace

namespace {

X509* verified_peer(SSL* ssl) {
  if (ssl == nullptr) return nullptr;
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return nullptr;
  // Verified only when the listener asked for it: without a client_ca_file OpenSSL does not ask.
  if ((SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) == 0) return nullptr;
  return cert;
}

}  // namespace

std::optional<ClientCertificate> verified_client_certificate(SSL* ssl) {
  X509* cert = verified_peer(ssl);
  if (cert == nullptr) return std::nullopt;
  return ClientCertificate{common_name(cert), alt_names(cert), sha256_hex(cert)};
}

std::string verified_client_fingerprint(SSL* ssl) {
  X509* cert = verified_peer(ssl);
  return cert == nullptr ? std::string() : sha256_hex(cert);
}

}  // namespace wsbridge::tls
