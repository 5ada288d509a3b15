#include "wsbridge/header_rules.hpp"

#include "wsbridge/text.hpp"

#include <algorithm>
#include <array>

namespace wsbridge::http {

namespace {

// All in canonical form.
constexpr std::array<std::string_view, 12> kReservedNames = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "expect",
    "http2-settings",
    "x-forwarded-for",  // wsbridge's: the client's address as wsbridge saw it
    "x-request-id",     // wsbridge's: unique per request
};
constexpr std::array<std::string_view, 2> kReservedPrefixes = {"proxy-", "x-wsbridge-"};

constexpr auto kTrustedNames = std::to_array<std::string_view>(
    {// Method and URL overrides (Rails, Express, Symfony, IIS URL Rewrite, Zend...).
     "x-http-method-override", "x-http-method", "x-method-override", "x-rewrite-url",
     // The client's address, host and scheme as a proxy in front would report them.
     "forwarded", "x-forwarded", "x-real-ip", "true-client-ip", "x-client-ip", "client-ip",
     "x-cluster-client-ip", "cf-connecting-ip", "fastly-client-ip", "x-originating-ip",
     "x-remote-ip", "x-remote-addr", "x-proxyuser-ip", "x-host", "x-url-scheme", "x-scheme",
     "front-end-https", "https",
     // The user an authenticating proxy vouches for (Apache, Kong, oauth2 gateways, generic SSO),
     // and its token.
     "x-auth-user", "x-user", "x-proxy-user", "x-userinfo", "x-jwt-assertion",
     // A client certificate a TLS terminator checked (nginx, HAProxy, IIS ARR, F5).
     "x-client-cert", "x-client-verify", "x-client-dn"});
constexpr auto kTrustedPrefixes = std::to_array<std::string_view>({
    "x-forwarded-",  // -host, -proto, -port, -prefix, -server, -ssl, -user, -email, ...
    "x-original-",   // -url, -uri, -host, -method
    "x-envoy-",      // Envoy's internal headers (x-envoy-original-path, x-envoy-internal)
    "x-amzn-oidc-",  // AWS ALB authentication
    "x-goog-authenticated-user-",  // Google IAP
    "x-goog-iap-",                 // Google IAP's signed assertion
    "x-ms-client-principal",       // Azure App Service authentication
    "x-auth-request-",             // oauth2-proxy
    "remote-",                     // Apache and Authelia: Remote-User, -Groups, -Email, -Name
    "x-remote-",         // Kubernetes request-header auth: X-Remote-User, -Group, -Extra-*
    "x-webauth-",        // Grafana's auth proxy: X-WEBAUTH-USER, -EMAIL, -ROLE
    "x-authenticated-",  // X-Authenticated-User, -Userid (Kong, WebSEAL)
    "x-consumer-",       // Kong: X-Consumer-Username, -ID, -Custom-ID
    "cf-access-",        // Cloudflare Access: Cf-Access-Authenticated-User-Email, -Jwt-Assertion
    "x-pomerium-",       // Pomerium: X-Pomerium-Jwt-Assertion, -Claim-*
    "x-ssl-",            // TLS offload: X-SSL-Client-Verify, -S-DN, -Cert
    "ssl-client-",       // SSL_CLIENT_CERT and friends, as CGI variables' names
    "x-arr-",            // IIS Application Request Routing: X-ARR-ClientCert, X-ARR-SSL
});

template <std::size_t N>
bool matches(const std::string& canonical, const std::array<std::string_view, N>& names) {
  return std::find(names.begin(), names.end(), canonical) != names.end();
}

template <std::size_t N>
bool starts_with_any(const std::string& canonical,
                     const std::array<std::string_view, N>& prefixes) {
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](std::string_view p) { return canonical.starts_with(p); });
}

}  // namespace

std::string canonical_header_name(std::string_view name) {
  return text::canonical_header_name(name);
}

HeaderClass classify_header(std::string_view name) {
  const std::string n = canonical_header_name(name);
  if (matches(n, kReservedNames) || starts_with_any(n, kReservedPrefixes)) {
    return HeaderClass::kReserved;
  }
  if (matches(n, kTrustedNames) || starts_with_any(n, kTrustedPrefixes)) {
    return HeaderClass::kTrusted;
  }
  return HeaderClass::kOrdinary;
}

bool overrides_method(std::string_view name) {
  const std::string n = canonical_header_name(name);
  return n == "x-http-method-override" || n == "x-http-method" || n == "x-method-override";
}

bool reserved_header(std::string_view name) {
  return classify_header(name) == HeaderClass::kReserved;
}

std::string describe_header(std::string_view name) {
  const std::string canonical = canonical_header_name(name);
  if (text::lower(name) == canonical) return std::string(name);
  return std::string(name) + " (read by backends as " + canonical + ")";
}

bool hook_may_see_header(std::string_view name) {
  const std::string n = text::lower(name);
  const std::string canonical = canonical_header_name(name);
  // The handshake's own mechanics mean nothing to the backend.
  if (n == "connection" || n == "upgrade" || n.starts_with("sec-websocket-key") ||
      n == "sec-websocket-version" || n == "sec-websocket-extensions") {
    return false;
  }
  if (canonical.starts_with("x-wsbridge-")) return false;
  return n == canonical || classify_header(name) == HeaderClass::kOrdinary;
}

}  // namespace wsbridge::http
