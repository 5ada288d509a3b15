// Certificate generation for the TLS tests with OpenSSL 3's X509 API (see test_ca.hpp).
#include "support/test_ca.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <ctime>
#include <stdexcept>
#include <utility>

#include "support/process.hpp"
#include "wsbridge/base64.hpp"

namespace wsbridge::testing {

// Outside the anonymous namespace: TestCa::Impl holds these, and a class with external linkage
// should not hold members of internal-linkage types.
namespace test_ca_detail {
template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using CertPtr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
}  // namespace test_ca_detail

namespace {

[[noreturn]] void fail(const std::string& what) {
  std::string msg = "test_ca: " + what;
  if (const unsigned long e = ERR_get_error(); e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    msg += ": ";
    msg += buf;
  }
  ERR_clear_error();
  throw std::runtime_error(msg);
}

using test_ca_detail::BioPtr;
using test_ca_detail::CertPtr;
using test_ca_detail::KeyPtr;

KeyPtr new_key(bool rsa = false) {
  KeyPtr key(rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256"));
  if (!key) fail(rsa ? "EVP_RSA_gen" : "EVP_EC_gen");
  return key;
}

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string cert_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) fail("PEM_write_bio_X509");
  return bio_string(bio.get());
}

std::string key_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    fail("PEM_write_bio_PrivateKey");
  return bio_string(bio.get());
}

std::string subject_line(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  return bio_string(bio.get());
}

std::string serial_hex(X509* cert) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string out(hex);
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) fail("extension " + std::to_string(nid) + " = " + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// Random positive 63-bit serials: two certificates with the same subject (the reload test's
// old and new one) must still be told apart.
void set_random_serial(X509* cert) {
  uint64_t serial = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial) != 1) fail("RAND");
  serial = (serial >> 1) | 1;
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert), serial);
}

CertPtr make_cert(const std::string& cn, EVP_PKEY* key, long not_before, long not_after,
                  const std::vector<std::string>& more_cns = {}) {
  CertPtr cert(X509_new());
  if (!cert) fail("X509_new");
  X509_set_version(cert.get(), 2);  // v3
  set_random_serial(cert.get());
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), not_before);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), not_after);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("wsbridge tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  for (const std::string& more : more_cns) {
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(more.c_str()), -1, -1, 0);
  }
  X509_set_pubkey(cert.get(), key);
  return cert;
}

// Distinct file names per call so several CAs (and several PKIs) never overwrite each other.
std::string file_stem(const std::string& cn) {
  static std::atomic<int> counter{0};
  std::string stem;
  for (char c : cn) stem += (std::isalnum(static_cast<unsigned char>(c)) != 0) ? c : '_';
  return stem + "-" + std::to_string(counter++);
}

IssuedCert write_files(X509* cert, EVP_PKEY* key, const std::string& cn) {
  IssuedCert out;
  out.cert_pem = cert_pem(cert);
  out.key_pem = key_pem(key);
  out.subject = subject_line(cert);
  out.serial_hex = serial_hex(cert);
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) fail("ASN1_TIME_to_tm");
  out.not_after = static_cast<long long>(timegm(&tm));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), digest, &len) != 1) fail("X509_digest");
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < len; ++i) {
    out.fingerprint += kHex[digest[i] >> 4];
    out.fingerprint += kHex[digest[i] & 0xf];
  }
  const std::string stem = file_stem(cn);
  out.cert_file = write_temp_file(stem + ".crt", out.cert_pem);
  out.key_file = write_temp_file(stem + ".key", out.key_pem);
  return out;
}

}  // namespace

struct TestCa::Impl {
  KeyPtr key;
  CertPtr cert;
};

TestCa::TestCa(const std::string& cn) : impl_(std::make_unique<Impl>()) {
  impl_->key = new_key();
  impl_->cert = make_cert(cn, impl_->key.get(), -2L * 24 * 3600, 3650L * 24 * 3600);
  X509* c = impl_->cert.get();
  X509_set_issuer_name(c, X509_get_subject_name(c));
  add_ext(c, c, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(c, c, NID_subject_key_identifier, "hash");
  if (X509_sign(c, impl_->key.get(), EVP_sha256()) == 0) fail("sign CA " + cn);
  self_ = write_files(c, impl_->key.get(), cn);
}

TestCa::~TestCa() = default;
TestCa::TestCa(TestCa&&) noexcept = default;
TestCa& TestCa::operator=(TestCa&&) noexcept = default;

IssuedCert TestCa::issue(const CertSpec& spec) const {
  KeyPtr key = new_key(spec.rsa);
  CertPtr cert = make_cert(spec.cn, key.get(), spec.not_before, spec.not_after, spec.more_cns);
  X509* c = cert.get();
  X509_set_issuer_name(c, X509_get_subject_name(impl_->cert.get()));
  add_ext(c, impl_->cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(c, impl_->cert.get(), NID_key_usage, "critical,digitalSignature");
  add_ext(c, impl_->cert.get(), NID_ext_key_usage, spec.client ? "clientAuth" : "serverAuth");
  add_ext(c, impl_->cert.get(), NID_subject_key_identifier, "hash");
  add_ext(c, impl_->cert.get(), NID_authority_key_identifier, "keyid:always");
  if (!spec.sans.empty()) {
    std::string sans;
    for (const auto& s : spec.sans) sans += (sans.empty() ? "" : ",") + s;
    add_ext(c, impl_->cert.get(), NID_subject_alt_name, sans);
  }
  if (X509_sign(c, impl_->key.get(), EVP_sha256()) == 0) fail("sign " + spec.cn);
  return write_files(c, key.get(), spec.cn);
}

std::string spki_sha256_base64(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    ERR_clear_error();
    bio.reset(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    CertPtr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) fail("spki_sha256_base64: neither a private key nor a certificate");
    key.reset(X509_get_pubkey(cert.get()));
  }
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key.get(), &der);
  if (len <= 0) fail("i2d_PUBKEY");
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(der, static_cast<size_t>(len), digest);
  OPENSSL_free(der);
  return base64_encode(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

TestPki::TestPki() {
  constexpr long kDay = 24 * 3600;
  const std::vector<std::string> local = {"DNS:localhost", "IP:127.0.0.1"};
  server = ca.issue({.cn = "localhost", .sans = local});
  api =
      ca.issue({.cn = "api.example.test", .sans = {"DNS:api.example.test", "DNS:*.example.test"}});
  server_renewed = ca.issue({.cn = "localhost", .sans = local, .not_after = 60 * kDay});
  expired =
      ca.issue({.cn = "localhost", .sans = local, .not_before = -2 * kDay, .not_after = -kDay});
  not_yet_valid =
      ca.issue({.cn = "localhost", .sans = local, .not_before = kDay, .not_after = 30 * kDay});
  mismatched = server;
  mismatched.key_file = server_renewed.key_file;
  mismatched.key_pem = server_renewed.key_pem;
  foreign_server = other_ca.issue({.cn = "localhost", .sans = local});
  const std::vector<std::string> device_sans = {"URI:urn:dev:device-1",
                                                "email:device-1@example.test"};
  device = client_ca.issue({.cn = "device-1", .sans = device_sans, .client = true});
  device_wrong_ca = other_ca.issue({.cn = "device-1", .sans = device_sans, .client = true});
  device_2 = client_ca.issue({.cn = "device-2", .sans = {"URI:urn:dev:device-2"}, .client = true});
}

const TestPki& TestPki::get() {
  static const TestPki pki;  // thread-safe lazy init; the files go with temp_dir() at exit
  return pki;
}

}  // namespace wsbridge::testing
