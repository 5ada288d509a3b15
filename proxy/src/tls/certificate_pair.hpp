// A certificate (with its chain) and its private key, read from PEM files and checked before any
// of it is used: both files parse, the key belongs to the certificate, and the certificate is
// valid now. A pair that fails is never half-loaded: at start it is a config error, at a reload
// the reload is refused and the pair in use stays.
#pragma once

#include <openssl/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace wsbridge::tls {

struct X509Free {
  void operator()(X509* x) const;
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const;
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

struct CertificatePair {
  X509Ptr leaf;
  std::vector<X509Ptr> chain;  // the intermediates that followed the leaf in cert_file
  PkeyPtr key;
  std::string subject;  // one line, for logs
  // In seconds: a nanosecond time_point ends in 2262, before certificates do ("99991231235959Z"
  // is RFC 5280's "no expiry").
  std::chrono::sys_seconds not_after;
  std::vector<std::string> dns_names;  // subjectAltName DNS entries (for the log)
};

// Which file a problem is in: config errors point at that key.
enum class PairFile { kCertificate, kKey };

struct PairError {
  PairFile file;
  std::string message;
};

// Reads and checks the pair; `now` is the time it must be valid at.
// Throws nothing: returns the pair or why not.
struct PairResult {
  std::unique_ptr<CertificatePair> pair;
  PairError error;
};
PairResult load_certificate_pair(const std::filesystem::path& cert_file,
                                 const std::filesystem::path& key_file,
                                 std::chrono::system_clock::time_point now);

// The certificates of a PEM file of CA certificates (client_ca_file); empty + `error` on failure,
// which a file none of whose certificates is valid at `now` is.
std::vector<X509Ptr> load_ca_file(
    const std::filesystem::path& file, std::string& error,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// OpenSSL's reason for the oldest error on this thread's error queue ("" when there is none);
// the queue is cleared, so a later failure does not report this one.
std::string openssl_reason();

}  // namespace wsbridge::tls
