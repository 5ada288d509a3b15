// The certificates one TLS listener serves, as ready OpenSSL contexts: a default one and those
// chosen by SNI (exact name first, then "*.domain"). Built once per configuration load, after every
// file was checked (certificate_pair.hpp), and immutable after: shards on every thread hand its
// contexts to new handshakes (SSL_CTX is reference counted and safe to share), and a reload builds
// a new set while connections made under the old one keep it.
//
// Every TLS connection starts on the listener's lws vhost context (lws creates the SSL). Our
// ClientHello callback on that context picks the certificate context and moves the connection
// onto it (SSL_set_SSL_CTX), with this set's protocol floor, ciphers and client-certificate
// policy: so SNI, reloads and mTLS need nothing from lws but the SSL object.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tls/certificate_pair.hpp"
#include "tls/tls_settings.hpp"

namespace wsbridge::tls {

struct NamedCertificate {
  std::vector<std::string> server_names;  // empty for the default
  std::filesystem::path cert_file;
  std::unique_ptr<CertificatePair> pair;
};

class ServerCertificates {
 public:
  // `certificates`: the default first, then the SNI entries. Throws std::runtime_error naming
  // the setting that OpenSSL refused ("ciphers ...").
  ServerCertificates(std::string listener, TlsSettings settings,
                     std::vector<NamedCertificate> certificates,
                     const std::vector<X509Ptr>& client_cas);
  ~ServerCertificates();
  ServerCertificates(const ServerCertificates&) = delete;
  ServerCertificates& operator=(const ServerCertificates&) = delete;

  const TlsSettings& settings() const { return settings_; }
  // The context for a ClientHello naming `server_name` ("" when it named none).
  SSL_CTX* select(std::string_view server_name) const;
  std::size_t certificate_count() const { return entries_.size(); }
  // Publishes each certificate's expiry as a metric.
  void publish_expiry() const;

 private:
  struct Entry {
    std::vector<std::string> names;  // lowercase; "*.example.com" for wildcards
    std::filesystem::path cert_file;
    std::string subject;
    std::int64_t not_after = 0;  // seconds since the epoch
    SSL_CTX* ctx = nullptr;
  };
  std::string listener_;
  TlsSettings settings_;
  std::vector<Entry> entries_;  // [0]: the default
};

// Where a shard's vhost finds its listener's current certificates: one per TLS listener and
// shard, read and replaced on that shard's thread only.
struct TlsSlot {
  std::shared_ptr<const ServerCertificates> current;
};

// Prepares the SSL_CTX lws made for a TLS listener's vhost (LWS_CALLBACK_OPENSSL_LOAD_EXTRA_
// SERVER_VERIFY_CERTS): our ClientHello callback, reading `slot`, replaces lws' SNI handling.
void prepare_vhost_context(SSL_CTX* vhost_ctx, TlsSlot* slot);

}  // namespace wsbridge::tls
