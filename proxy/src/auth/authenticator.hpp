// The handshake decision: who is connecting, and may they use this route? Pure: it is given the
// request's parts and answers with an identity or an HTTP status, so it is tested without lws.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth_config.hpp"
#include "tls/client_identity.hpp"

namespace wsbridge::auth {

struct HandshakeRequest {
  std::optional<std::string> authorization;                // the Authorization header
  std::vector<std::pair<std::string, std::string>> query;  // decoded query arguments
  std::optional<std::string> cookie;                       // the Cookie header
  std::vector<std::string> subprotocols;                   // Sec-WebSocket-Protocol, split
  std::optional<std::string> origin;                       // the Origin header
  // Where the browser sent the request, for the same-origin test of ambient credentials: the
  // Host header (HTTP/2: :authority), or the X-Forwarded-Host a trusted proxy set.
  std::optional<std::string> host;
  std::optional<std::string> sec_fetch_site;  // Fetch Metadata: "same-origin", "cross-site"...
  bool tls = false;                           // came over TLS to this process
  // The client certificate the TLS handshake verified (mTLS), if any.
  std::optional<tls::ClientCertificate> client_cert;
};

struct AuthDecision {
  bool allowed = false;
  unsigned status = 0;     // when refused: 401 or 403
  bool challenge = false;  // add "WWW-Authenticate: Bearer" (missing credentials)
  // When refused: what the metrics and logs call it: "origin", "missing_credentials",
  // "invalid_credentials" or "forbidden".
  std::string code;
  std::string reason;  // for the log and the response body; never contains the credential

  // When allowed:
  std::string user;
  nlohmann::json claims = nlohmann::json::object();
  std::string method;  // "jwt", "api_key", "client_cert" or "" (anonymous)
  std::optional<TopicAcl> acl;
  std::optional<std::chrono::system_clock::time_point> expires_at;
  // Allowed without credentials only because the route takes them in-band (an MQTT CONNECT's
  // password): the adapter must get one accepted (authenticate_in_band) before serving.
  bool credential_pending = false;
};

// Whether the request's ambient credentials may be believed: what a browser sends with any
// page's request (its cookies, its TLS client certificate), so that a page of another site that
// opens a WebSocket here would connect as the user (cross-site WebSocket hijacking). Believed
// from the server's own pages (Sec-Fetch-Site "same-origin" or "none", else an Origin on the
// Host the request names, https on a TLS connection), from an origin an allowlist names (the
// Origin check passed it), and from requests without Origin or Sec-Fetch-Site (not a browser's
// cross-site request).
bool ambient_credentials_believed(const RouteAuth& route, const HandshakeRequest& request,
                                  const OriginPolicy& listener_origins);

// require_client_cert: nullopt when the request presented a certificate the listener verified
// and it may be believed (above); else the refusal (403, code "client_cert" or "origin").
std::optional<AuthDecision> client_certificate_missing(const RouteAuth& route,
                                                       const HandshakeRequest& request,
                                                       const OriginPolicy& listener_origins);

// The host a trusted proxy says the client asked for: the first of its X-Forwarded-Host list.
std::optional<std::string> forwarded_host(std::string_view x_forwarded_host);

// The upgrade's one check of who may connect: the Origin against the listener's allowlist
// (`listener_origins`, every route of the listener) and the route's, then the credentials.
AuthDecision authenticate(const RouteAuth& route, const AuthSettings& settings,
                          const HandshakeRequest& request,
                          std::chrono::system_clock::time_point now,
                          const OriginPolicy& listener_origins = OriginPolicy{});

// A credential the client sent inside its protocol after the upgrade (an MQTT CONNECT's
// password): verified as a JWT or API key exactly as at the upgrade, then authorized.
AuthDecision authenticate_in_band(const RouteAuth& route, const AuthSettings& settings,
                                  std::string_view credential,
                                  const std::optional<tls::ClientCertificate>& client_cert,
                                  std::chrono::system_clock::time_point now);

// The route's own rules (allowed_users, required_claims) for an authenticated decision.
AuthDecision authorize(const RouteAuth& route, AuthDecision decision);

// Verifies a fresh token sent mid-session ({"type":"auth","token":...}) for a connection of
// `user` admitted with `claims`. `route` must be the policy in force now (after any reload), so
// the token passes exactly what a new handshake would: keys, issuer, audience, expiry, the
// route's users and claims. It must name the same user with the same claims, apart from its own
// lifetime (exp, iat, nbf, jti, auth_time).
AuthDecision reauthenticate(const RouteAuth& route, const std::string& user,
                            const nlohmann::json& claims, std::string_view token,
                            std::chrono::system_clock::time_point now);

// "a, b ,c" -> {"a","b","c"}
std::vector<std::string> split_header_list(std::string_view value);
// Lowercase hex SHA-256.
std::string sha256_hex(std::string_view data);

}  // namespace wsbridge::auth
