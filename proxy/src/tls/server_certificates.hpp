// The certificates one TLS listener serves, as ready OpenSSL contexts: a default one and those
// chosen by SNI (exact name first, then "*.domain"). Built once per configuration load, after every
// file was checked (certificate_pair.hpp), and immutable after: shards on every thread hand its
// contexts to new handshakes (SSL_CTX is reference counted and safe to share), and a reload builds
// a new set while connections made under the old one keep it.
//
// Every TLS connection starts on the listener's lws vhost context (lws creates the SSL), which is
// set up as a copy of the set's default (TlsSlot::adopt). Our ClientHello callback on it picks
// the certificate for the SNI name; for another than the default it moves the connection onto
// that context (SSL_set_SSL_CTX), with this set's protocol floor, ciphers and client-certificate
// policy. So SNI, reloads and mTLS need nothing from lws but the SSL object.
#pragma once

#include <openssl/types.h>

#include <array>
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
  // Makes `ctx` (a vhost's) look like the default context: certificate, chain, floor, ciphers,
  // client-certificate policy. Nothing is served from it (the ClientHello callback moves every
  // handshake to its certificate's own context); lws and OpenSSL see a current certificate on the
  // vhost. On the thread that owns `ctx`.
  void configure_as_default(SSL_CTX* ctx) const;
  // Sets the session id context of a connection being handshaken: that of the certificate
  // `selected` (one of this set's contexts) serves.
  void set_session_context(SSL* ssl, SSL_CTX* selected) const;
  // Publishes each certificate's expiry as a metric.
  void publish_expiry() const;

 private:
  struct Entry {
    std::vector<std::string> names;  // lowercase; "*.example.com" for wildcards
    std::filesystem::path cert_file;
    std::string subject;
    std::int64_t not_after = 0;  // seconds since the epoch
    SSL_CTX* ctx = nullptr;
    // OpenSSL resumes a session (ticket or cache, TLS 1.2 and 1.3) only under the session id
    // context it began with. This one names the client-certificate policy, its CAs and this
    // certificate: a session begun under another policy (before a reload: "optional", a CA since
    // removed) is not resumed, and neither is one begun with another certificate, for another
    // server name (its client gets a full handshake, and the certificate it asked for).
    std::array<unsigned char, 32> session_context{};
  };
  std::string listener_;
  TlsSettings settings_;
  std::vector<Entry> entries_;  // [0]: the default
};

// Where a shard's vhost finds its listener's current certificates: one per TLS listener and
// shard, read and replaced on that shard's thread only.
struct TlsSlot {
  std::shared_ptr<const ServerCertificates> current;
  SSL_CTX* vhost_ctx = nullptr;  // set by prepare_vhost_context
  // A new set (a reload): the vhost's context is set up as its default.
  void adopt(std::shared_ptr<const ServerCertificates> certificates);
};

// Prepares the SSL_CTX lws made for a TLS listener's vhost (LWS_CALLBACK_OPENSSL_LOAD_EXTRA_
// SERVER_VERIFY_CERTS): our ClientHello callback, reading `slot`, replaces lws' SNI handling.
void prepare_vhost_context(SSL_CTX* vhost_ctx, TlsSlot* slot);

}  // namespace wsbridge::tls
