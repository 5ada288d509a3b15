// The test client's TLS side: an OpenSSL client on the TcpConn's non-blocking socket (SNI,
// verification against a test CA, optional client certificate, version bounds, ALPN).
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>

#include "support/ws_test_client.hpp"
#include "support/ws_test_client_util.hpp"

namespace wsbridge::testing {

using namespace client_detail;

namespace {

// The queued OpenSSL errors as one line (and clears them), for the messages tests print.
std::string openssl_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out.empty() ? "no OpenSSL error queued" : out;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

TlsInfo describe(SSL* ssl) {
  TlsInfo info;
  info.version = SSL_get_version(ssl);
  info.cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl));
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
  info.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  if (X509* cert = SSL_get1_peer_certificate(ssl)) {
    BIO* bio = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    info.peer_subject = bio_text(bio);
    BIO_free(bio);
    BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
    char* hex = BN_bn2hex(bn);
    info.peer_serial = hex;
    OPENSSL_free(hex);
    BN_free(bn);
    bio = BIO_new(BIO_s_mem());
    ASN1_TIME_print(bio, X509_get0_notAfter(cert));
    info.peer_not_after = bio_text(bio);
    BIO_free(bio);
    X509_free(cert);
  }
  return info;
}

}  // namespace

TcpConn TcpConn::connect(const std::string& host, uint16_t port,
                         const std::optional<TlsOptions>& tls, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  TcpConn conn = connect(host, port, timeout);
  if (tls) {
    conn.start_tls(*tls,
                   std::max(std::chrono::milliseconds(1),
                            std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now())));
  }
  return conn;
}

void TcpConn::start_tls(const TlsOptions& opts, std::chrono::milliseconds timeout) {
  if (fd_ < 0) throw std::runtime_error("start_tls on a closed TcpConn");
  if (tls_) throw std::runtime_error("start_tls twice");
  if (!buffer_.empty()) throw std::runtime_error("start_tls with unread plaintext buffered");
  const auto deadline = Clock::now() + timeout;
  ERR_clear_error();
  auto tls = std::make_unique<Tls>();
  tls->ctx = SSL_CTX_new(TLS_client_method());
  if (tls->ctx == nullptr) throw TlsError("SSL_CTX_new: " + openssl_errors());
  SSL_CTX_set_mode(tls->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (opts.min_version != 0 || opts.max_version != 0) {
    // Versions below TLS 1.2 sit behind OpenSSL 3's default security level 1: drop to 0 so the
    // client can really offer them and it is the server that refuses.
    SSL_CTX_set_security_level(tls->ctx, 0);
    if (opts.min_version != 0) SSL_CTX_set_min_proto_version(tls->ctx, opts.min_version);
    if (opts.max_version != 0) SSL_CTX_set_max_proto_version(tls->ctx, opts.max_version);
  }
  if (!opts.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(tls->ctx, opts.ca_file.c_str(), nullptr) != 1) {
      throw TlsError("load CA " + opts.ca_file + ": " + openssl_errors());
    }
    SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_PEER, nullptr);
  }
  if (!opts.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(tls->ctx, opts.cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(tls->ctx, opts.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      throw TlsError("client certificate " + opts.cert_file + ": " + openssl_errors());
    }
  }
  if (!opts.alpn.empty()) {
    std::string wire;
    for (const auto& p : opts.alpn) wire += static_cast<char>(p.size()) + p;
    SSL_CTX_set_alpn_protos(tls->ctx, reinterpret_cast<const unsigned char*>(wire.data()),
                            static_cast<unsigned>(wire.size()));
  }
  tls->ssl = SSL_new(tls->ctx);
  if (tls->ssl == nullptr || SSL_set_fd(tls->ssl, fd_) != 1) {
    throw TlsError("SSL_new: " + openssl_errors());
  }
  if (!opts.server_name.empty()) {
    // SSL_set_tlsext_host_name is a macro with a C cast (-Wold-style-cast): its expansion.
    SSL_ctrl(tls->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(opts.server_name.c_str()));
  }
  if (!opts.ca_file.empty() && opts.verify_name) {
    X509_VERIFY_PARAM* param = SSL_get0_param(tls->ssl);
    if (opts.server_name.empty()) {
      X509_VERIFY_PARAM_set1_ip_asc(param, "127.0.0.1");
    } else {
      X509_VERIFY_PARAM_set1_host(param, opts.server_name.c_str(), 0);
    }
  }
  for (;;) {
    const int rc = SSL_connect(tls->ssl);
    if (rc == 1) break;
    const int err = SSL_get_error(tls->ssl, rc);
    short events = 0;
    if (err == SSL_ERROR_WANT_READ) events = POLLIN;
    if (err == SSL_ERROR_WANT_WRITE) events = POLLOUT;
    if (events == 0) {
      std::string why = openssl_errors();
      const long verify = SSL_get_verify_result(tls->ssl);
      if (verify != X509_V_OK)
        why += " (verify: " + std::string(X509_verify_cert_error_string(verify)) + ")";
      if (err == SSL_ERROR_SYSCALL) why += " (syscall, errno " + std::to_string(errno) + ")";
      throw TlsError("TLS handshake failed: " + why);
    }
    if (wait_fd(fd_, events, deadline) == 0) throw TlsError("TLS handshake timed out");
  }
  tls->info = describe(tls->ssl);
  tls_ = std::move(tls);
}

// (Here rather than beside the plain http_get: it is how the tests reach https://.)
HttpResponse http_get(const ClientOptions& opts) {
  const auto deadline = Clock::now() + opts.timeout;
  TcpConn conn = TcpConn::connect(opts.host, opts.port, opts.tls, opts.timeout);
  conn.send_all(
      build_request("GET " + opts.path + " HTTP/1.1",
                    {{"Host", host_header(opts.host, opts.port)}, {"Connection", "close"}},
                    opts.extra_headers),
      std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
  return conn.read_http_response(
      std::max(std::chrono::milliseconds(1),
               std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now())));
}

const TlsInfo& TcpConn::tls_info() const {
  if (!tls_) throw std::runtime_error("tls_info on a plain connection");
  return tls_->info;
}

long TcpConn::tls_recv(char* buf, size_t len) {
  size_t got = 0;
  ERR_clear_error();
  const int rc = SSL_read_ex(tls_->ssl, buf, len, &got);
  if (rc == 1) return static_cast<long>(got);
  switch (SSL_get_error(tls_->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
      return -1;
    case SSL_ERROR_WANT_WRITE:
      return -2;
    default:
      // close_notify, a TCP FIN without one, an RST or a fatal alert (the server refusing our
      // certificate): to a test they all mean the server closed the connection.
      ERR_clear_error();
      return 0;
  }
}

long TcpConn::tls_send(std::string_view bytes) {
  size_t sent = 0;
  ERR_clear_error();
  const int rc = SSL_write_ex(tls_->ssl, bytes.data(), bytes.size(), &sent);
  if (rc == 1) return static_cast<long>(sent);
  switch (SSL_get_error(tls_->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
      return -1;
    case SSL_ERROR_WANT_WRITE:
      return -2;
    default:
      throw std::runtime_error("TLS send failed (peer closed?): " + openssl_errors());
  }
}

void TcpConn::tls_shutdown() {
  ERR_clear_error();
  SSL_shutdown(tls_->ssl);  // sends our close_notify; we do not wait for the server's
  ERR_clear_error();
}

}  // namespace wsbridge::testing
