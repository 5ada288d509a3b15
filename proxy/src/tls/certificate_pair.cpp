#include "tls/certificate_pair.hpp"
#include "wsbridge/text.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>

namespace wsbridge::tls {

void X509Free::operator()(X509* x) const {
  X509_free(x);
}
void PkeyFree::operator()(EVP_PKEY* k) const {
  EVP_PKEY_free(k);
}

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

// Certificates, keys and CA bundles are a few KB; a public CA bundle is about 200 KB, and a
// thousand-certificate one a few MB. Past this the file is no such thing: /dev/zero or a log
// named by mistake filled memory until the process died.
constexpr std::uintmax_t kMaxPemFileBytes = 64ull << 20;

// The whole file, or why it cannot be read. Only a regular file (after symbolic links): a FIFO
// blocked the reload's thread until something wrote to it, a device never ended.
bool read_file(const std::filesystem::path& file, std::string& out, std::string& error) {
  std::error_code ec;
  const auto status = std::filesystem::status(file, ec);
  if (std::filesystem::is_directory(status)) {
    error = "cannot read " + file.string() + ": it is a directory";
    return false;
  }
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status)) {
    error = "cannot read " + file.string() + ": not a regular file (a device, FIFO or socket)";
    return false;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    error = "cannot read " + file.string() + ": " + text::errno_text(errno);
    return false;
  }
  out.clear();
  char buffer[64 * 1024];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    out.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (out.size() > kMaxPemFileBytes) {
      error = "cannot read " + file.string() + ": over " + std::to_string(kMaxPemFileBytes >> 20) +
              " MiB, no certificate or key file is";
      out.clear();
      return false;
    }
  }
  return true;
}

std::string one_line(const X509_NAME* name) {
  char text[512];
  X509_NAME_oneline(name, text, sizeof text);
  return text;
}

std::chrono::sys_seconds time_of(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::sys_seconds(std::chrono::seconds(timegm(&tm)));
}

std::string utc_text(std::chrono::sys_seconds t) {
  const std::time_t s = static_cast<std::time_t>(t.time_since_epoch().count());
  std::tm tm{};
  gmtime_r(&s, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return text;
}

// After a loop of PEM_read_bio_X509 calls: whether it stopped because no PEM block was left
// (what follows the last one may be text without one, which PEM files often carry) rather than
// at a block cut short or damaged (a file copied while being written, base64 gone wrong). Takes
// OpenSSL's error queue either way.
bool pem_ended_cleanly(std::string& reason) {
  const unsigned long e = ERR_peek_last_error();
  const bool clean =
      e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
  if (!clean) {
    char text[256];
    ERR_error_string_n(e, text, sizeof text);
    reason = text;
  }
  ERR_clear_error();
  return clean;
}

}  // namespace

PairResult load_certificate_pair(const std::filesystem::path& cert_file,
                                 const std::filesystem::path& key_file,
                                 std::chrono::system_clock::time_point now) {
  PairResult result;
  auto fail = [&](PairFile file, std::string message) {
    result.pair.reset();
    result.error = {file, std::move(message)};
    return std::move(result);
  };
  std::string pem;
  std::string why;
  if (!read_file(cert_file, pem, why)) return fail(PairFile::kCertificate, why);
  auto pair = std::make_unique<CertificatePair>();
  {
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    ERR_clear_error();
    pair->leaf.reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!pair->leaf) {
      // (A first certificate copied while being written began as one: say so, as for the rest.)
      if (std::string reason; !pem_ended_cleanly(reason)) {
        return fail(PairFile::kCertificate,
                    cert_file.string() + " has its first certificate cut short or damaged (" +
                        reason + ")");
      }
      return fail(
          PairFile::kCertificate,
          cert_file.string() + " holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")");
    }
    while (X509* next = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      pair->chain.emplace_back(next);
    }
    // (A chain cut off mid-write would otherwise be served short: clients then fail to find
    // the issuer of the certificate.)
    if (std::string reason; !pem_ended_cleanly(reason)) {
      return fail(PairFile::kCertificate,
                  cert_file.string() + " has a certificate cut short or damaged after its " +
                      std::to_string(1 + pair->chain.size()) + " whole one(s) (" + reason + ")");
    }
  }
  if (!read_file(key_file, pem, why)) return fail(PairFile::kKey, why);
  {
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    // No passphrase prompt ever: an encrypted key fails here with a reason.
    pair->key.reset(PEM_read_bio_PrivateKey(
        bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
    if (!pair->key) {
      const std::string reason = openssl_reason();
      return fail(PairFile::kKey, key_file.string() + " holds no unencrypted PEM private key" +
                                      (reason.empty() ? "" : " (" + reason + ")"));
    }
  }
  if (X509_check_private_key(pair->leaf.get(), pair->key.get()) != 1) {
    ERR_clear_error();
    // The key of a certificate further down the file: the chain is in the wrong order (the
    // issuer first, as some CAs hand it out), which is not a key that belongs to nothing.
    for (std::size_t i = 0; i < pair->chain.size(); ++i) {
      if (X509_check_private_key(pair->chain[i].get(), pair->key.get()) == 1) {
        return fail(PairFile::kCertificate,
                    "the certificates in " + cert_file.string() +
                        " are in the wrong order: the key in " + key_file.string() +
                        " belongs to certificate " + std::to_string(i + 2) + " (" +
                        one_line(X509_get_subject_name(pair->chain[i].get())) +
                        "); the server's own certificate must come first, then its issuers");
      }
      ERR_clear_error();
    }
    return fail(PairFile::kKey, "the private key in " + key_file.string() +
                                    " does not belong to the certificate in " + cert_file.string());
  }
  pair->subject = one_line(X509_get_subject_name(pair->leaf.get()));
  pair->not_after = time_of(X509_get0_notAfter(pair->leaf.get()));
  const auto not_before = time_of(X509_get0_notBefore(pair->leaf.get()));
  const auto now_s = std::chrono::floor<std::chrono::seconds>(now);  // (compared in seconds)
  if (now_s >= pair->not_after) {
    return fail(PairFile::kCertificate, "the certificate in " + cert_file.string() + " (" +
                                            pair->subject + ") expired on " +
                                            utc_text(pair->not_after));
  }
  if (now_s < not_before) {
    return fail(PairFile::kCertificate, "the certificate in " + cert_file.string() + " (" +
                                            pair->subject + ") is not valid before " +
                                            utc_text(not_before));
  }
  if (auto* names = static_cast<GENERAL_NAMES*>(
          X509_get_ext_d2i(pair->leaf.get(), NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
      if (n->type != GEN_DNS) continue;
      const ASN1_STRING* s = n->d.dNSName;
      pair->dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                   static_cast<std::size_t>(ASN1_STRING_length(s)));
    }
    GENERAL_NAMES_free(names);
  }
  result.pair = std::move(pair);
  return result;
}

std::vector<X509Ptr> load_ca_file(const std::filesystem::path& file, std::string& error,
                                  std::chrono::system_clock::time_point now) {
  std::vector<X509Ptr> out;
  std::string pem;
  if (!read_file(file, pem, error)) return out;
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  while (X509* next = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    out.emplace_back(next);
  }
  if (std::string reason; !pem_ended_cleanly(reason)) {
    error = file.string() + " has a certificate cut short or damaged after its " +
            std::to_string(out.size()) + " whole one(s) (" + reason + ")";
    out.clear();
    return out;
  }
  if (out.empty()) {
    error = file.string() + " holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")";
    return out;
  }
  // Client certificates verify against these only while one of them is valid: a file of CAs
  // that have all expired (or are not valid yet) refuses every client, with nothing in the
  // log but each handshake's failure.
  const auto now_s = std::chrono::floor<std::chrono::seconds>(now);
  const auto usable = [&](const X509Ptr& ca) {
    return time_of(X509_get0_notBefore(ca.get())) <= now_s &&
           now_s < time_of(X509_get0_notAfter(ca.get()));
  };
  if (std::none_of(out.begin(), out.end(), usable)) {
    const X509* last = out.back().get();
    const auto not_after = time_of(X509_get0_notAfter(last));
    error = file.string() + ": no certificate in it is valid now, so no client certificate can " +
            "verify (" + one_line(X509_get_subject_name(last)) +
            (now_s >= not_after
                 ? " expired on " + utc_text(not_after)
                 : " is not valid before " + utc_text(time_of(X509_get0_notBefore(last)))) +
            ")";
    out.clear();
  }
  return out;
}

std::string openssl_reason() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "";
  char text[256];
  ERR_error_string_n(e, text, sizeof text);
  return text;
}

}  // namespace wsbridge::tls
