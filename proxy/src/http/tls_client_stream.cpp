#include "http/tls_client_stream.hpp"

#include "handshake/ip_address.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <stdexcept>
#include <utility>

namespace wsbridge {

namespace {
std::string openssl_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(e, text, sizeof text);
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out;
}

}  // namespace

TlsClientContext::TlsClientContext(const std::string& ca_file, const std::string& cert_file,
                                   const std::string& key_file, bool verify) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (ctx_ == nullptr) throw std::runtime_error("cannot create a TLS context: " + openssl_errors());
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx_, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  if (!cert_file.empty() &&
      (SSL_CTX_use_certificate_chain_file(ctx_, cert_file.c_str()) != 1 ||
       SSL_CTX_use_PrivateKey_file(ctx_, (key_file.empty() ? cert_file : key_file).c_str(),
                                   SSL_FILETYPE_PEM) != 1 ||
       SSL_CTX_check_private_key(ctx_) != 1)) {
    const std::string why = openssl_errors();
    SSL_CTX_free(ctx_);
    throw std::runtime_error("cannot load the client certificate " + cert_file + ": " + why);
  }
  const int ok = ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx_)
                                 : SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr);
  if (ok != 1) {
    const std::string why = openssl_errors();
    SSL_CTX_free(ctx_);
    throw std::runtime_error("cannot load CA certificates" +
                             (ca_file.empty() ? std::string() : " from " + ca_file) + ": " + why);
  }
}

TlsClientContext::~TlsClientContext() {
  SSL_CTX_free(ctx_);
}

TlsClientStream::TlsClientStream(const TlsClientContext& context, const std::string& host) {
  ssl_ = SSL_new(context.get());
  network_in_ = BIO_new(BIO_s_mem());
  network_out_ = BIO_new(BIO_s_mem());
  if (ssl_ == nullptr || network_in_ == nullptr || network_out_ == nullptr) {
    BIO_free(network_in_);
    BIO_free(network_out_);
    network_in_ = network_out_ = nullptr;
    fail("cannot set up TLS: " + openssl_errors());
    return;
  }
  // An empty memory BIO means "no data yet", not end of file.
  BIO_ctrl(network_in_, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, nullptr);  // (the macro casts)
  SSL_set_bio(ssl_, network_in_, network_out_);
  if (is_ip_literal(host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str());
  } else {
    SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(host.c_str()));  // SNI
    SSL_set1_host(ssl_, host.c_str());
  }
  SSL_set_connect_state(ssl_);
}

std::unique_ptr<TlsClientStream> TlsClientStream::adopt_established(SSL* ssl) {
  std::unique_ptr<TlsClientStream> stream(new TlsClientStream());
  stream->ssl_ = ssl;
  stream->network_in_ = BIO_new(BIO_s_mem());
  stream->network_out_ = BIO_new(BIO_s_mem());
  if (stream->network_in_ == nullptr || stream->network_out_ == nullptr) {
    BIO_free(stream->network_in_);
    BIO_free(stream->network_out_);
    stream->network_in_ = stream->network_out_ = nullptr;
    stream->fail("cannot set up TLS: " + openssl_errors());
    return stream;
  }
  BIO_ctrl(stream->network_in_, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, nullptr);
  // (tls::keep_session made it quiet for lws' close of its connection: it speaks again.)
  SSL_set_quiet_shutdown(ssl, 0);
  SSL_set_shutdown(ssl, 0);
  SSL_set_bio(ssl, stream->network_in_, stream->network_out_);
  stream->state_ = SSL_is_init_finished(ssl) != 0 ? State::kReady : State::kHandshaking;
  return stream;
}

SSL* TlsClientStream::release() {
  state_ = State::kFailed;
  error_ = "handed back";
  network_in_ = network_out_ = nullptr;  // freed by lws' SSL_set_fd, which replaces them
  return std::exchange(ssl_, nullptr);
}

TlsClientStream::~TlsClientStream() {
  SSL_free(ssl_);
}

TlsClientStream::State TlsClientStream::fail(const std::string& what) {
  state_ = State::kFailed;
  if (error_.empty()) error_ = what;
  return state_;
}

void TlsClientStream::feed(const char* data, std::size_t len) {
  if (network_in_ != nullptr && len > 0) BIO_write(network_in_, data, static_cast<int>(len));
}

TlsClientStream::State TlsClientStream::advance() {
  if (state_ != State::kHandshaking) return state_;
  const int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    state_ = State::kReady;
    return state_;
  }
  const int e = SSL_get_error(ssl_, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return state_;
  const long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) {
    return fail(std::string("TLS certificate verification failed: ") +
                X509_verify_cert_error_string(verify));
  }
  return fail("TLS handshake failed: " + openssl_errors());
}

bool TlsClientStream::write(std::string_view plain) {
  if (state_ != State::kReady) return false;
  while (!plain.empty()) {
    const int n = SSL_write(ssl_, plain.data(), static_cast<int>(plain.size()));
    if (n <= 0) {
      fail("TLS write failed: " + openssl_errors());
      return false;
    }
    plain.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool TlsClientStream::read(std::string& out) {
  if (state_ != State::kReady) return state_ != State::kFailed;
  char buf[16384];
  while (true) {
    const int n = SSL_read(ssl_, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    const int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
    if (e == SSL_ERROR_ZERO_RETURN) return true;  // close_notify: the socket's close follows
    fail("TLS read failed: " + openssl_errors());
    return false;
  }
}

std::string TlsClientStream::take_output() {
  std::string out;
  if (network_out_ == nullptr) return out;
  char* data = nullptr;
  const long n = BIO_ctrl(network_out_, BIO_CTRL_INFO, 0, &data);
  if (n > 0) {
    out.assign(data, static_cast<std::size_t>(n));
    BIO_ctrl(network_out_, BIO_CTRL_RESET, 0, nullptr);
  }
  return out;
}

}  // namespace wsbridge
