#include "auth/authenticator.hpp"

#include "wsbridge/bounded_json.hpp"
#include "wsbridge/text.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>

namespace wsbridge::auth {

namespace {

using text::iequals;

std::string trim(std::string_view s) {
  return std::string(text::trim(s));
}

std::optional<std::string> credential_from(CredentialSource source, const RouteAuth& route,
                                           const HandshakeRequest& r) {
  switch (source) {
    case CredentialSource::kHeader:
      if (r.authorization) {
        const std::string value = trim(*r.authorization);
        if (value.size() > 7 && iequals(value.substr(0, 7), "bearer "))
          return trim(value.substr(7));
      }
      return std::nullopt;
    case CredentialSource::kQuery:
      for (const auto& [name, value] : r.query) {
        if (name == route.query_param && !value.empty()) return value;
      }
      return std::nullopt;
    case CredentialSource::kCookie:
      if (r.cookie) {
        std::string_view rest = *r.cookie;  // "a=b; c=d"
        while (!rest.empty()) {
          const auto semi = rest.find(';');
          const std::string item = trim(rest.substr(0, semi));
          const auto eq = item.find('=');
          if (eq != std::string::npos && item.substr(0, eq) == route.cookie &&
              eq + 1 < item.size()) {
            return item.substr(eq + 1);
          }
          if (semi == std::string_view::npos) break;
          rest.remove_prefix(semi + 1);
        }
      }
      return std::nullopt;
    case CredentialSource::kSubprotocol:
      for (const auto& p : r.subprotocols) {
        if (p.starts_with("bearer.") && p.size() > 7) return p.substr(7);
      }
      return std::nullopt;
    case CredentialSource::kMqttConnect:  // not in the upgrade: the adapter asks later
      return std::nullopt;
  }
  return std::nullopt;
}

AuthDecision refuse(unsigned status, std::string reason, bool challenge = false) {
  AuthDecision d;
  d.status = status;
  d.code = challenge ? "missing_credentials" : status == 401 ? "invalid_credentials" : "forbidden";
  d.reason = std::move(reason);
  d.challenge = challenge;
  return d;
}

std::optional<TopicAcl> acl_from_claim(const nlohmann::json& claims, const std::string& name) {
  auto it = claims.find(name);
  if (it == claims.end()) return std::nullopt;
  TopicAcl acl;  // a present but malformed claim allows nothing (fail closed)
  if (it->is_object()) {
    for (const auto& [key, out] :
         {std::pair<const char*, std::vector<std::string>*>{"sub", &acl.subscribe},
          {"pub", &acl.publish}}) {
      auto list = it->find(key);
      if (list == it->end() || !list->is_array()) continue;
      for (const auto& f : *list) {
        if (f.is_string()) out->push_back(f.get<std::string>());
      }
    }
  }
  return acl;
}

AuthDecision verify_token(const RouteAuth& route, const std::string& token,
                          std::chrono::system_clock::time_point now) {
  auto result = verify_jwt(token, route.jwt->keys, route.jwt->policy, now);
  if (auto* err = std::get_if<JwtError>(&result))
    return refuse(401, "invalid token: " + err->reason);
  auto& t = std::get<VerifiedToken>(result);
  if (!route.jwt->algorithms.empty()) {
    auto alg = parse_jwt_algorithm(bounded_json::string_member(t.header, "alg"));
    if (!alg || std::find(route.jwt->algorithms.begin(), route.jwt->algorithms.end(), *alg) ==
                    route.jwt->algorithms.end()) {
      return refuse(401, "invalid token: algorithm not allowed for this verifier");
    }
  }
  AuthDecision d;
  d.allowed = true;
  d.user = t.subject;
  d.claims = std::move(t.claims);
  d.method = "jwt";
  d.expires_at = t.expires_at;
  if (route.acl_claim) d.acl = acl_from_claim(d.claims, *route.acl_claim);
  return d;
}

// A required credential that the route lets the client send in-band once connected.
bool credential_missing_here(const RouteAuth& route, const std::optional<std::string>& credential) {
  return !credential && route.verifies_credentials() && route.takes_in_band_credentials();
}

// An API key of the route's, or else a token its verifier accepts.
AuthDecision verify_credential(const RouteAuth& route, const AuthSettings& settings,
                               const std::string& credential,
                               std::chrono::system_clock::time_point now) {
  if (route.api_keys) {
    const std::string hash = sha256_hex(credential);
    for (const auto& key : settings.api_keys) {
      // Constant time, so the comparison reveals nothing about how close a guess came.
      if (CRYPTO_memcmp(hash.data(), key.sha256.data(), hash.size()) == 0) {
        AuthDecision d;
        d.allowed = true;
        d.user = key.name;
        d.claims = key.claims;
        d.method = "api_key";
        d.acl = key.acl;
        return d;
      }
    }
  }
  if (!route.jwt) return refuse(401, "invalid credentials: unknown API key");
  return verify_token(route, credential, now);
}

}  // namespace

std::vector<std::string> split_header_list(std::string_view value) {
  std::vector<std::string> out;
  while (!value.empty()) {
    const auto comma = value.find(',');
    std::string item = trim(value.substr(0, comma));
    if (!item.empty()) out.push_back(std::move(item));
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return text::lower_hex({reinterpret_cast<const char*>(digest), len});
}

void add_certificate_claims(AuthDecision& d, const std::optional<tls::ClientCertificate>& cert) {
  // Only the TLS handshake may say these: a token or key claiming them is overruled.
  for (const char* name : {"cert.cn", "cert.san", "cert.fingerprint"}) d.claims.erase(name);
  if (!cert) return;
  d.claims["cert.cn"] = cert->cn;
  d.claims["cert.san"] = cert->san;
  d.claims["cert.fingerprint"] = cert->fingerprint;
}

bool ambient_credentials_believed(const RouteAuth& route, const HandshakeRequest& request,
                                  const OriginPolicy& listener_origins) {
  const bool listed = listener_origins.lists_origins() || route.origins.lists_origins();
  if (request.sec_fetch_site) {
    // The browser's own word, which no page can set: right behind a balancer that rewrites Host.
    const std::string site = text::lower(*request.sec_fetch_site);
    if (site == "same-origin" || site == "none") return true;
    return listed && request.origin.has_value();
  }
  if (!request.origin || listed) return true;
  return request.host && same_origin_as_host(*request.origin, *request.host, request.tls);
}

std::optional<AuthDecision> client_certificate_missing(const RouteAuth& route,
                                                       const HandshakeRequest& request,
                                                       const OriginPolicy& listener_origins) {
  if (!request.client_cert) {
    AuthDecision d = refuse(403,
                            "this route requires a client certificate (mTLS) that the listener "
                            "verified");
    d.code = "client_cert";
    return d;
  }
  if (ambient_credentials_believed(route, request, listener_origins)) return std::nullopt;
  AuthDecision d = refuse(403, "a client certificate is not taken from a page of another origin (" +
                                   request.origin.value_or("none named") +
                                   "): list the origins that may use it in allowed_origins");
  d.code = "origin";
  return d;
}

std::optional<std::string> forwarded_host(std::string_view x_forwarded_host) {
  const std::string_view first = text::trim(x_forwarded_host.substr(0, x_forwarded_host.find(',')));
  if (first.empty()) return std::nullopt;
  return std::string(first);
}

AuthDecision authenticate(const RouteAuth& route, const AuthSettings& settings,
                          const HandshakeRequest& request,
                          std::chrono::system_clock::time_point now,
                          const OriginPolicy& listener_origins) {
  if (!listener_origins.allows(request.origin) || !route.origins.allows(request.origin)) {
    AuthDecision d = refuse(403, request.origin ? "origin " + *request.origin + " is not allowed"
                                                : "a request without Origin is not allowed");
    d.code = "origin";
    return d;
  }
  // Two tokens in the query: which one is the client's? (A proxy in front, a log or a backend
  // may read the other.) Refused like two Authorization headers. Cookies of one name may come
  // twice from a browser (one per path or domain, the most specific first): the first counts.
  if (route.verifies_credentials() &&
      std::find(route.sources.begin(), route.sources.end(), CredentialSource::kQuery) !=
          route.sources.end() &&
      std::count_if(request.query.begin(), request.query.end(), [&](const auto& argument) {
        return argument.first == route.query_param;
      }) > 1) {
    AuthDecision d = refuse(400, "more than one " + route.query_param + " query argument");
    d.code = "bad_request";
    return d;
  }
  // Cookies and a TLS client certificate come with any page's request: believed only from the
  // server's own pages or allowlisted ones (ambient_credentials_believed).
  const bool ambient_believed = ambient_credentials_believed(route, request, listener_origins);
  const std::optional<tls::ClientCertificate> no_certificate;
  const std::optional<tls::ClientCertificate>& certificate =
      ambient_believed ? request.client_cert : no_certificate;
  const auto from_another_origin = [&](const std::string& what) {
    AuthDecision refused =
        refuse(403, what + " is not taken as a credential from a page of another origin (" +
                        request.origin.value_or("none named") +
                        "): list the origins that may use it in allowed_origins");
    refused.code = "origin";
    return refused;
  };
  bool cookie_refused = false;
  std::optional<std::string> credential;
  for (const auto source : route.sources) {
    if (source == CredentialSource::kCookie && !ambient_believed) {
      cookie_refused = cookie_refused || credential_from(source, route, request).has_value();
      continue;
    }
    if ((credential = credential_from(source, route, request))) break;
  }
  AuthDecision d;
  if (!credential && route.client_cert && request.client_cert) {
    if (!certificate) return from_another_origin("a client certificate");
    d.allowed = true;
    d.user = certificate->cn.empty() ? certificate->fingerprint : certificate->cn;
    d.method = "client_cert";
  } else if (!credential && cookie_refused && route.verifies_credentials()) {
    return from_another_origin("a cookie");
  } else if (!route.verifies_credentials() || !credential) {
    if (route.required && !(credential_missing_here(route, credential))) {
      return refuse(401, "missing credentials", /*challenge=*/true);
    }
    d.allowed = true;  // anonymous (or to be authenticated in-band)
    d.credential_pending = route.required;
  } else {
    d = verify_credential(route, settings, *credential, now);
    if (!d.allowed) return d;
  }
  // The user goes into logs, ACL templates and the X-Wsbridge-User a backend reads: one with a
  // line break could not go into that header, and the backend could not tell it from nobody.
  if (std::any_of(d.user.begin(), d.user.end(), text::is_ascii_control)) {
    return refuse(401, d.method == "client_cert"
                           ? "the client certificate's common name holds control characters"
                           : "invalid token: its subject holds control characters");
  }
  // (Not from a page of another origin: its own token with the user's certificate's claims.)
  add_certificate_claims(d, certificate);
  return authorize(route, std::move(d));
}

AuthDecision authorize(const RouteAuth& route, AuthDecision d) {
  // Authorization on this route: authenticated is not enough when users or claims are listed.
  if (!route.allowed_users.empty() &&
      std::find(route.allowed_users.begin(), route.allowed_users.end(), d.user) ==
          route.allowed_users.end()) {
    return refuse(403, "user \"" + d.user + "\" is not allowed on this route");
  }
  for (const auto& required : route.required_claims) {
    // (Named references, not a structured binding: clang before 16 cannot capture those.)
    const std::string& claim = required.first;
    const std::vector<std::string>& accepted = required.second;
    auto it = d.claims.find(claim);
    bool ok = false;
    if (it != d.claims.end()) {
      auto accepts = [&](const nlohmann::json& v) {
        return v.is_string() &&
               std::find(accepted.begin(), accepted.end(), v.get<std::string>()) != accepted.end();
      };
      ok = accepts(*it) || (it->is_array() && std::any_of(it->begin(), it->end(), accepts));
    }
    if (!ok) return refuse(403, "claim \"" + claim + "\" does not allow this route");
  }
  return d;
}

AuthDecision reauthenticate(const RouteAuth& route, const std::string& user,
                            const nlohmann::json& claims, std::string_view token,
                            std::chrono::system_clock::time_point now) {
  if (!route.jwt) return refuse(400, "this route does not take tokens");
  AuthDecision d = verify_token(route, std::string(token), now);
  if (!d.allowed) return d;
  // The connection's TLS client certificate still stands: its claims carry over.
  for (const char* name : {"cert.cn", "cert.san", "cert.fingerprint"}) {
    d.claims.erase(name);
    if (claims.is_object() && claims.contains(name)) d.claims[name] = claims[name];
  }
  d = authorize(route, std::move(d));
  if (!d.allowed) return d;
  if (d.user != user) return refuse(403, "the new token is for another user");
  // The connection keeps the identity it was admitted with (adapters derived its ACLs from it),
  // so a token that says something else about the user needs a new connection.
  static constexpr std::string_view kLifetimeClaims[] = {"exp", "iat", "nbf", "jti", "auth_time"};
  auto same_apart_from_lifetime = [&](const nlohmann::json& a, const nlohmann::json& b) {
    for (const auto& [key, value] : a.items()) {
      if (std::find(std::begin(kLifetimeClaims), std::end(kLifetimeClaims), key) !=
          std::end(kLifetimeClaims)) {
        continue;
      }
      auto other = b.find(key);
      if (other == b.end() || *other != value) return false;
    }
    return true;
  };
  if (!claims.is_object() || !d.claims.is_object() || !same_apart_from_lifetime(claims, d.claims) ||
      !same_apart_from_lifetime(d.claims, claims)) {
    return refuse(403, "the new token's claims differ from the connection's: reconnect with it");
  }
  return d;
}

AuthDecision authenticate_in_band(const RouteAuth& route, const AuthSettings& settings,
                                  std::string_view credential,
                                  const std::optional<tls::ClientCertificate>& client_cert,
                                  std::chrono::system_clock::time_point now) {
  if (credential.empty()) return refuse(401, "missing credentials");
  if (!route.jwt && !route.api_keys) return refuse(401, "this route takes no in-band credentials");
  AuthDecision d = verify_credential(route, settings, std::string(credential), now);
  if (!d.allowed) return d;
  add_certificate_claims(d, client_cert);
  return authorize(route, std::move(d));
}

}  // namespace wsbridge::auth
