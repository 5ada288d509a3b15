#include "config/tls_keys.hpp"

#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>
#include <set>
#include <stdexcept>

#include "wsbridge/text.hpp"

namespace wsbridge {
namespace {

std::filesystem::path resolve(const std::string& file, const std::filesystem::path& dir) {
  std::filesystem::path p(file);
  return p.is_relative() ? dir / p : p;
}

// A server name an SNI entry may list: a DNS name, or "*." and one (a wildcard covers one label).
bool valid_server_name(const std::string& name) {
  std::string_view rest = name;
  if (rest.starts_with("*.")) rest.remove_prefix(2);
  if (rest.empty() || rest.size() > 253 || rest.front() == '.' || rest.back() == '.') return false;
  for (const char c : rest) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.')) return false;
  }
  if (rest.find("..") != std::string_view::npos) return false;
  // An address is no server name: SNI never carries one (RFC 6066 3), so the entry never matched.
  // (No top-level domain is all digits.)
  const std::string_view last = rest.substr(rest.rfind('.') + 1);
  return !std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Whether `leaf` is valid for `name` (an SNI entry's server name) in a browser's eyes: OpenSSL's
// own host check on the subjectAltName DNS names (a "*." name covers one label; the subject's CN
// is not looked at, as browsers no longer do). A "*." server name needs the same wildcard.
bool certificate_covers(X509* leaf, const std::string& name) {
  return X509_check_host(leaf, name.c_str(), name.size(),
                         X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
                         nullptr) == 1;
}

// A Strict-Transport-Security value (RFC 6797 6.1): one line of visible characters with a
// max-age of delta-seconds, quoted or not.
std::optional<std::string> hsts_problem(const std::string& value) {
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return "'hsts' must be one line of text, with no control characters";
  }
  const std::string lower = text::lower(value);
  const std::size_t at = lower.find("max-age=");
  if (at != std::string::npos) {
    std::string_view seconds = std::string_view(lower).substr(at + 8);
    if (seconds.starts_with('"')) seconds.remove_prefix(1);
    if (!seconds.empty() && seconds.front() >= '0' && seconds.front() <= '9') return std::nullopt;
  }
  return "'hsts' is a Strict-Transport-Security value with a max-age in seconds (e.g. "
         "\"max-age=31536000; includeSubDomains\"); leave the key out for none";
}

// Reads cert_file and key_file of `t` and checks the pair, failing at the key of the file at fault.
tls::NamedCertificate read_pair(ConfigTable& t, const std::filesystem::path& dir,
                                std::vector<std::filesystem::path>& files) {
  const std::filesystem::path cert = resolve(t.required_string("cert_file"), dir);
  const std::filesystem::path key = resolve(t.required_string("key_file"), dir);
  files.push_back(cert);
  files.push_back(key);
  tls::PairResult r = tls::load_certificate_pair(cert, key, std::chrono::system_clock::now());
  if (!r.pair) {
    t.fail_at(r.error.file == tls::PairFile::kCertificate ? "cert_file" : "key_file",
              r.error.message);
  }
  tls::NamedCertificate named;
  named.cert_file = cert;
  named.pair = std::move(r.pair);
  return named;
}

}  // namespace

ListenerTls read_tls_table(ConfigTable& t, const std::filesystem::path& config_dir,
                           const std::string& listener) {
  ListenerTls out;
  tls::TlsSettings s;
  if (auto v = t.one_of<tls::MinVersion>(
          "min_version", {{"1.2", tls::MinVersion::kTls12}, {"1.3", tls::MinVersion::kTls13}})) {
    s.min_version = *v;
  }
  if (auto v = t.string("ciphers")) s.ciphers = *v;
  if (auto v = t.string("ciphersuites")) s.ciphersuites = *v;
  if (auto v = t.string("hsts")) {
    // (A header's value: a line break in it forged headers. RFC 6797 6.1.1: max-age is
    // required; "" sent no header at all, though set.)
    if (auto problem = hsts_problem(*v)) t.fail_at("hsts", *problem);
    s.hsts = *v;
  }
  if (auto v = t.boolean("watch")) s.watch = *v;

  std::vector<tls::X509Ptr> client_cas;
  if (auto ca = t.string("client_ca_file")) {
    const std::filesystem::path file = resolve(*ca, config_dir);
    out.files.push_back(file);
    std::string error;
    client_cas = tls::load_ca_file(file, error);
    if (client_cas.empty()) t.fail_at("client_ca_file", error);
    s.client_cert = tls::ClientCertMode::kRequired;
  }
  if (auto mode = t.one_of<tls::ClientCertMode>("client_cert",
                                                {{"none", tls::ClientCertMode::kNone},
                                                 {"optional", tls::ClientCertMode::kOptional},
                                                 {"required", tls::ClientCertMode::kRequired}})) {
    if (*mode != tls::ClientCertMode::kNone && client_cas.empty()) {
      t.fail_at("client_cert",
                "'client_cert' needs a 'client_ca_file' to verify certificates with");
    }
    s.client_cert = *mode;
  }

  std::vector<tls::NamedCertificate> certificates;
  certificates.push_back(read_pair(t, config_dir, out.files));
  std::set<std::string> named_before;  // server names of the entries so far, as they match
  for (ConfigTable& sni : t.array_of_tables("sni")) {
    if (!sni.contains("server_names"))
      sni.fail("missing required key 'server_names' in " + sni.name());
    auto names = *sni.string_array("server_names");
    if (names.empty()) sni.fail_at("server_names", "'server_names' must name at least one host");
    for (const auto& name : names) {
      if (!valid_server_name(name)) {
        sni.fail_at("server_names", "\"" + name +
                                        "\" is not a server name (a DNS name such as "
                                        "\"api.example.com\", or \"*.example.com\")");
      }
      // Names match caseless: one of them would never be chosen.
      if (!named_before.insert(text::lower(name)).second) {
        sni.fail_at("server_names", "\"" + name +
                                        "\" is named twice in this listener's sni entries: a "
                                        "server name picks one certificate");
      }
    }
    tls::NamedCertificate named = read_pair(sni, config_dir, out.files);
    for (const auto& name : names) {
      if (!certificate_covers(named.pair->leaf.get(), name)) {
        std::string listed;
        for (const auto& d : named.pair->dns_names) listed += (listed.empty() ? "" : ", ") + d;
        sni.fail_at("server_names",
                    "the certificate in " + named.cert_file.string() + " is not valid for \"" +
                        name + "\": browsers would refuse it (its subjectAltName DNS names: " +
                        (listed.empty() ? "none" : listed) + ")");
      }
    }
    named.server_names = std::move(names);
    certificates.push_back(std::move(named));
    sni.reject_unknown_keys();
  }
  try {
    out.certificates = std::make_shared<const tls::ServerCertificates>(
        listener, std::move(s), std::move(certificates), client_cas);
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    const std::string key = what.substr(0, what.find(':'));
    t.fail_at(t.contains(key) ? key : "cert_file", what);
  }
  return out;
}

}  // namespace wsbridge
