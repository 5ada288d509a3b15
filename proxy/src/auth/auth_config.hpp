// What the configuration says about authentication: token verifiers ([jwt.NAME]), API keys
// ([[api_keys]]), and each route's policy ([routes.auth]).
#pragma once

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "auth/jwt.hpp"
#include "auth/origin.hpp"
#include "wsbridge/config_table.hpp"
#include "wsbridge/plugin.hpp"

namespace wsbridge::auth {

struct JwtVerifier {
  std::string name;
  std::vector<JwtKey> keys;
  JwtPolicy policy;
  std::vector<JwtAlgorithm> algorithms;  // empty: every algorithm a key accepts
};

struct ApiKey {
  std::string name;    // becomes the identity's user
  std::string sha256;  // lowercase hex of SHA-256(key): the key itself is never stored
  nlohmann::json claims = nlohmann::json::object();
  std::optional<TopicAcl> acl;
};

// Top-level sections shared by every route.
struct AuthSettings {
  std::map<std::string, std::shared_ptr<const JwtVerifier>> verifiers;
  std::vector<ApiKey> api_keys;
};

// kMqttConnect: the password of the client's MQTT CONNECT, which the adapter checks after the
// upgrade (Connection::authenticate); only routes that speak MQTT use it.
enum class CredentialSource { kHeader, kQuery, kCookie, kSubprotocol, kMqttConnect };

struct RouteAuth {
  bool required = false;  // refuse connections without valid credentials (401)
  std::vector<CredentialSource> sources = {CredentialSource::kHeader, CredentialSource::kQuery,
                                           CredentialSource::kCookie,
                                           CredentialSource::kSubprotocol};
  std::string query_param = "access_token";
  std::string cookie = "access_token";
  std::shared_ptr<const JwtVerifier> jwt;  // tokens verified by this
  bool api_keys = false;                   // [[api_keys]] accepted
  bool client_cert = false;  // a verified client certificate (mTLS) authenticates: user = its CN
  std::vector<std::string> allowed_users;                           // empty: any authenticated user
  std::map<std::string, std::vector<std::string>> required_claims;  // claim -> accepted values
  std::optional<std::string> acl_claim;  // claim with {"sub":[..],"pub":[..]}
  OriginPolicy origins;

  bool verifies_credentials() const { return jwt != nullptr || api_keys || client_cert; }
  bool takes_in_band_credentials() const {
    return std::find(sources.begin(), sources.end(), CredentialSource::kMqttConnect) !=
           sources.end();
  }
};

// Reads [jwt.NAME] (secret_env / secret, public_key_file, jwks_file, issuer, audience, leeway,
// require_exp, algorithms) and [[api_keys]] (name, sha256, claims, allow_subscribe,
// allow_publish) from the top level. Files are relative to `config_dir`.
AuthSettings parse_auth_settings(ConfigTable& top, const std::filesystem::path& config_dir);

// Reads a route's `auth` table.
RouteAuth parse_route_auth(ConfigTable& table, const AuthSettings& settings);

// Reads `allowed_origins` and `allow_missing_origin` from a listener or route table.
OriginPolicy parse_origin_policy(ConfigTable& table);

}  // namespace wsbridge::auth
