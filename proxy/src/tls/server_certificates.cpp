#include "tls/server_certificates.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/tls1.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <stdexcept>

#include "tls/plain_http_answer.hpp"
#include "tls/shared_session_cache.hpp"
#include "wsbridge/metrics.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge::tls {
namespace {

constexpr unsigned char kSessionIdContext[] = "wsbridge";  // (until a set's own is adopted)
// OpenSSL 3.0's default TLS 1.3 suites (TLS_DEFAULT_CIPHERSUITES), to go back to at a reload.
constexpr const char* kDefaultCiphersuites =
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256";

// Browsers and our clients speak HTTP/1.1 to us: the guards below lws parse HTTP/1.1 on the
// plaintext (docs/TLS.md, "HTTP/2", says why not h2). No offer of it: no ALPN at all.
int select_http11(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
                  unsigned int in_len, void*) {
  static constexpr unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, out_len, kHttp11, sizeof kHttp11, in, in_len) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

// The certificate is chosen in the ClientHello callback; this only acknowledges the name (and
// keeps lws' own SNI callback, which would move the connection to another vhost, out of it).
int accept_server_name(SSL*, int*, void*) {
  return SSL_TLSEXT_ERR_OK;
}

// (OpenSSL's macro for this casts C-style.)
void set_servername_callback(SSL_CTX* ctx) {
  SSL_CTX_callback_ctrl(ctx, SSL_CTRL_SET_TLSEXT_SERVERNAME_CB,
                        reinterpret_cast<void (*)()>(accept_server_name));
}

metrics::Counter& handshakes(const char* result) {
  return metrics::Registry::global().counter("wsbridge_tls_handshakes_total",
                                             "TLS handshakes on the listeners, by result",
                                             {{"result", result}});
}

// (Also the listeners' answer to plain HTTP: plain_http_answer.hpp.)
void count_handshakes(const SSL* ssl, int where, int ret) {
  static metrics::Counter& ok = handshakes("ok");
  static metrics::Counter& failed = handshakes("failed");
  if ((where & SSL_CB_HANDSHAKE_DONE) != 0) {
    ok.inc();
  } else if ((where & SSL_CB_ALERT) != 0 && (where & SSL_CB_WRITE) != 0 &&
             (ret >> 8) == SSL3_AL_FATAL) {
    failed.inc();
  } else if ((where & SSL_CB_ACCEPT_EXIT) == SSL_CB_ACCEPT_EXIT && ret <= 0 &&
             answer_plain_http_request(ssl)) {
    failed.inc();  // (failed without an alert: none is sent to a plain HTTP client)
  }
}

// One set of session ticket keys for the process: a client resuming on another shard's
// listener socket (they share the port) still resumes.
const std::array<unsigned char, 80>& ticket_keys() {
  static std::array<unsigned char, 80> keys{};
  static std::once_flag once;
  std::call_once(once, [] { RAND_bytes(keys.data(), static_cast<int>(keys.size())); });
  return keys;
}

// The host_name of a ClientHello's server_name extension (RFC 6066 3), or "".
std::string_view client_hello_server_name(SSL* ssl) {
  const unsigned char* p = nullptr;
  std::size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1 || len < 5) {
    return {};
  }
  const std::size_t list = static_cast<std::size_t>(p[0]) << 8 | p[1];
  if (list + 2 != len || p[2] != TLSEXT_NAMETYPE_host_name) return {};
  const std::size_t name = static_cast<std::size_t>(p[3]) << 8 | p[4];
  if (5 + name > len) return {};
  return {reinterpret_cast<const char*>(p + 5), name};
}

int on_client_hello(SSL* ssl, int* alert, void* arg) {
  const auto* slot = static_cast<const TlsSlot*>(arg);
  if (slot == nullptr || !slot->current) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  const ServerCertificates& certs = *slot->current;
  SSL_CTX* ctx = certs.select(client_hello_server_name(ssl));
  // Every handshake moves to its certificate's own context, the default one's too, and takes the
  // current set's policy. The vhost's context is set up like the default (TlsSlot::adopt) but is
  // never served from: an SSL copied its settings when it was made, so a connection accepted
  // before a reload (to client_cert = "required", say) and sending its ClientHello after it kept
  // the old verify mode; and the vhost context keeps a certificate per key type, so a reload from
  // an EC to an RSA certificate left the EC one served to most clients.
  if (SSL_set_SSL_CTX(ssl, ctx) == nullptr) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  // (Before OpenSSL looks at a ticket or session id, which comes after this callback.)
  certs.set_session_context(ssl, ctx);
  // What SSL_set_SSL_CTX leaves on the SSL from the context it was made with: the version floor
  // (chosen right after this callback), ciphers, options and the client-certificate policy.
  const TlsSettings& s = certs.settings();
  SSL_set_min_proto_version(ssl, SSL_CTX_get_min_proto_version(ctx));
  SSL_set_options(ssl, SSL_CTX_get_options(ctx));
  if (SSL_set_cipher_list(ssl, s.ciphers.c_str()) != 1 ||
      SSL_set_ciphersuites(
          ssl, s.ciphersuites.empty() ? kDefaultCiphersuites : s.ciphersuites.c_str()) != 1) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), nullptr);
  SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(ctx));
  return SSL_CLIENT_HELLO_SUCCESS;
}

// The session id context of a policy: SHA-256 over the protocol floor, the cipher lists, the
// client-certificate mode and the DER of each client CA. (A session resumes with the version and
// suite it began with: without the floor and the ciphers here, one a reload took away went on
// being used by every client that resumed, ticket after ticket.)
std::array<unsigned char, 32> session_context_of(const TlsSettings& s,
                                                 const std::vector<X509Ptr>& client_cas) {
  std::array<unsigned char, 32> out{};
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  const ClientCertMode mode = s.client_cert;
  const unsigned char policy[] = {static_cast<unsigned char>(mode),
                                  static_cast<unsigned char>(s.min_version)};
  // (The lists as configured, each ended by a NUL: "a" + "b" differs from "ab" + "".)
  bool ok = md != nullptr && EVP_DigestInit_ex(md, EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(md, kSessionIdContext, sizeof kSessionIdContext - 1) == 1 &&
            EVP_DigestUpdate(md, policy, sizeof policy) == 1 &&
            EVP_DigestUpdate(md, s.ciphers.c_str(), s.ciphers.size() + 1) == 1 &&
            EVP_DigestUpdate(md, s.ciphersuites.c_str(), s.ciphersuites.size() + 1) == 1;
  for (const X509Ptr& ca : client_cas) {
    if (!ok || mode == ClientCertMode::kNone) break;
    unsigned char* der = nullptr;
    const int len = i2d_X509(ca.get(), &der);
    ok = len > 0 && EVP_DigestUpdate(md, der, static_cast<std::size_t>(len)) == 1;
    OPENSSL_free(der);
  }
  if (!ok || EVP_DigestFinal_ex(md, out.data(), nullptr) != 1) {
    RAND_bytes(out.data(), static_cast<int>(out.size()));  // (no resumption across it, then)
  }
  EVP_MD_CTX_free(md);
  return out;
}

// One certificate's under a policy: SHA-256 over the policy's context and the certificate's DER,
// so that a session begun with one certificate (one server name) resumes under no other.
std::array<unsigned char, 32> session_context_of(const std::array<unsigned char, 32>& policy,
                                                 X509* leaf) {
  std::array<unsigned char, 32> out{};
  unsigned char* der = nullptr;
  const int len = i2d_X509(leaf, &der);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  const bool ok = len > 0 && md != nullptr && EVP_DigestInit_ex(md, EVP_sha256(), nullptr) == 1 &&
                  EVP_DigestUpdate(md, policy.data(), policy.size()) == 1 &&
                  EVP_DigestUpdate(md, der, static_cast<std::size_t>(len)) == 1 &&
                  EVP_DigestFinal_ex(md, out.data(), nullptr) == 1;
  if (!ok) RAND_bytes(out.data(), static_cast<int>(out.size()));
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  return out;
}

SSL_CTX* make_context(const TlsSettings& s, const CertificatePair& pair,
                      const std::vector<X509Ptr>& client_cas) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) throw std::runtime_error("cannot create a TLS context: " + openssl_reason());
  struct Guard {
    SSL_CTX* ctx;
    ~Guard() {
      if (ctx != nullptr) SSL_CTX_free(ctx);
    }
  } guard{ctx};
  SSL_CTX_set_min_proto_version(
      ctx, s.min_version == MinVersion::kTls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  // No renegotiation (a CPU sink and a past source of bugs), no TLS compression (CRIME).
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_cipher_list(ctx, s.ciphers.c_str()) != 1) {
    throw std::runtime_error("ciphers: OpenSSL accepts none of \"" + s.ciphers + "\"");
  }
  // A list may name suites that encrypt nothing or authenticate no one ("eNULL", "aNULL"):
  // OpenSSL takes them; a TLS listener that offers them is not one.
  const STACK_OF(SSL_CIPHER)* suites = SSL_CTX_get_ciphers(ctx);
  for (int i = 0; suites != nullptr && i < sk_SSL_CIPHER_num(suites); ++i) {
    const SSL_CIPHER* suite = sk_SSL_CIPHER_value(suites, i);
    if (SSL_CIPHER_get_cipher_nid(suite) == NID_undef ||
        SSL_CIPHER_get_auth_nid(suite) == NID_auth_null) {
      throw std::runtime_error("ciphers: \"" + s.ciphers + "\" allows " +
                               SSL_CIPHER_get_name(suite) +
                               ", which encrypts nothing or authenticates no server");
    }
  }
  if (!s.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, s.ciphersuites.c_str()) != 1) {
    throw std::runtime_error("ciphersuites: OpenSSL refuses \"" + s.ciphersuites + "\"");
  }
  ERR_clear_error();
  if (SSL_CTX_use_certificate(ctx, pair.leaf.get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, pair.key.get()) != 1) {
    throw std::runtime_error("cert_file: OpenSSL refuses the certificate: " + openssl_reason());
  }
  for (const X509Ptr& c : pair.chain) SSL_CTX_add1_chain_cert(ctx, c.get());
  SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);
  if (s.client_cert != ClientCertMode::kNone) {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
    for (const X509Ptr& ca : client_cas) {
      X509_STORE_add_cert(store, ca.get());
      sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(ca.get())));
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    const int mode =
        SSL_VERIFY_PEER |
        (s.client_cert == ClientCertMode::kRequired ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    SSL_CTX_set_verify(ctx, mode, nullptr);
    SSL_CTX_set_verify_depth(ctx, 8);
  }
  SSL_CTX_set_alpn_select_cb(ctx, select_http11, nullptr);
  set_servername_callback(ctx);
  SSL_CTX_set_info_callback(ctx, count_handshakes);
  guard.ctx = nullptr;
  return ctx;
}

}  // namespace

ServerCertificates::ServerCertificates(std::string listener, TlsSettings settings,
                                       std::vector<NamedCertificate> certificates,
                                       const std::vector<X509Ptr>& client_cas)
    : listener_(std::move(listener)), settings_(std::move(settings)) {
  const auto policy = session_context_of(settings_, client_cas);
  try {
    for (NamedCertificate& c : certificates) {
      Entry e;
      for (const auto& n : c.server_names) e.names.push_back(text::lower(n));
      e.cert_file = c.cert_file;
      e.subject = c.pair->subject;
      e.not_after = static_cast<std::int64_t>(c.pair->not_after.time_since_epoch().count());
      e.ctx = make_context(settings_, *c.pair, client_cas);
      e.session_context = session_context_of(policy, c.pair->leaf.get());
      SSL_CTX_set_session_id_context(e.ctx, e.session_context.data(), e.session_context.size());
      entries_.push_back(std::move(e));
    }
  } catch (...) {
    for (Entry& e : entries_) SSL_CTX_free(e.ctx);
    throw;
  }
}

ServerCertificates::~ServerCertificates() {
  for (Entry& e : entries_) SSL_CTX_free(e.ctx);
}

SSL_CTX* ServerCertificates::select(std::string_view server_name) const {
  // "a.test." is the fully qualified spelling of "a.test" (RFC 6066 3 asks for no trailing dot,
  // but some clients send one).
  if (server_name.ends_with('.')) server_name.remove_suffix(1);
  if (!server_name.empty() && entries_.size() > 1) {
    const std::string name = text::lower(server_name);
    for (std::size_t i = 1; i < entries_.size(); ++i) {
      for (const auto& n : entries_[i].names) {
        if (n == name) return entries_[i].ctx;
      }
    }
    // "*.example.com" covers exactly one label: "a.example.com", not "a.b.example.com".
    const std::size_t dot = name.find('.');
    if (dot != std::string::npos && dot > 0) {
      const std::string wildcard = "*" + name.substr(dot);
      for (std::size_t i = 1; i < entries_.size(); ++i) {
        for (const auto& n : entries_[i].names) {
          if (n == wildcard) return entries_[i].ctx;
        }
      }
    }
  }
  return entries_.front().ctx;
}

void ServerCertificates::publish_expiry() const {
  auto& registry = metrics::Registry::global();
  for (const Entry& e : entries_) {
    registry
        .gauge("wsbridge_tls_certificate_expiry_timestamp_seconds",
               "when each certificate a TLS listener serves expires (notAfter, Unix time)",
               {{"listener", listener_}, {"cert_file", e.cert_file.string()}})
        .set(e.not_after);
  }
}

void ServerCertificates::configure_as_default(SSL_CTX* ctx) const {
  SSL_CTX* from = entries_.front().ctx;
  SSL_CTX_use_certificate(ctx, SSL_CTX_get0_certificate(from));
  SSL_CTX_use_PrivateKey(ctx, SSL_CTX_get0_privatekey(from));
  SSL_CTX_clear_chain_certs(ctx);
  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(from, &chain);
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i));
  }
  SSL_CTX_set_min_proto_version(ctx, SSL_CTX_get_min_proto_version(from));
  SSL_CTX_set_options(ctx, SSL_CTX_get_options(from));
  SSL_CTX_set_cipher_list(ctx, settings_.ciphers.c_str());
  SSL_CTX_set_ciphersuites(
      ctx, settings_.ciphersuites.empty() ? kDefaultCiphersuites : settings_.ciphersuites.c_str());
  SSL_CTX_set1_cert_store(ctx, SSL_CTX_get_cert_store(from));
  const STACK_OF(X509_NAME)* names = SSL_CTX_get_client_CA_list(from);
  SSL_CTX_set_client_CA_list(ctx,
                             names != nullptr ? SSL_dup_CA_list(names) : sk_X509_NAME_new_null());
  SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(from), nullptr);
  SSL_CTX_set_verify_depth(ctx, SSL_CTX_get_verify_depth(from));
  SSL_CTX_set_alpn_select_cb(ctx, select_http11, nullptr);
  const auto& context = entries_.front().session_context;
  SSL_CTX_set_session_id_context(ctx, context.data(), context.size());
  ERR_clear_error();
}

void ServerCertificates::set_session_context(SSL* ssl, SSL_CTX* selected) const {
  for (const Entry& e : entries_) {
    if (e.ctx == selected) {
      SSL_set_session_id_context(ssl, e.session_context.data(), e.session_context.size());
      return;
    }
  }
}

void TlsSlot::adopt(std::shared_ptr<const ServerCertificates> certificates) {
  current = std::move(certificates);
  if (vhost_ctx != nullptr && current) current->configure_as_default(vhost_ctx);
}

void prepare_vhost_context(SSL_CTX* vhost_ctx, TlsSlot* slot) {
  slot->vhost_ctx = vhost_ctx;
  SSL_CTX_set_client_hello_cb(vhost_ctx, on_client_hello, slot);
  set_servername_callback(vhost_ctx);
  SSL_CTX_set_info_callback(vhost_ctx, count_handshakes);
  SSL_CTX_set_session_id_context(vhost_ctx, kSessionIdContext, sizeof kSessionIdContext - 1);
  SSL_CTX_set_options(vhost_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  const auto& keys = ticket_keys();
  SSL_CTX_set_tlsext_ticket_keys(vhost_ctx, const_cast<unsigned char*>(keys.data()),
                                 static_cast<long>(keys.size()));
  use_shared_session_cache(vhost_ctx);  // and session ids too: whichever shard issued them
  slot->adopt(slot->current);
}

}  // namespace wsbridge::tls
