#include "auth/auth_config.hpp"

#include "wsbridge/bounded_json.hpp"
#include "wsbridge/text.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace wsbridge::auth {

namespace {

using namespace std::chrono_literals;

std::string read_file(ConfigTable& t, const std::string& key, const std::filesystem::path& dir) {
  std::filesystem::path path = *t.string(key);
  if (path.is_relative()) path = dir / path;
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  const int open_error = errno;
  std::error_code ec;
  const bool directory = std::filesystem::is_directory(path, ec);
  if (!in || directory) {
    const std::string why = directory         ? "it is a directory"
                            : open_error != 0 ? text::errno_text(open_error)
                                              : "unreadable";
    t.fail_at(key, "'" + key + "' in " + t.name() + ": cannot read " + path.string() + ": " + why);
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<TopicAcl> read_acl(ConfigTable& t) {
  auto sub = t.string_array("allow_subscribe");
  auto pub = t.string_array("allow_publish");
  if (!sub && !pub) return std::nullopt;
  return TopicAcl{sub.value_or(std::vector<std::string>{}),
                  pub.value_or(std::vector<std::string>{})};
}

std::shared_ptr<const JwtVerifier> read_verifier(const std::string& name, ConfigTable& t,
                                                 const std::filesystem::path& dir) {
  auto v = std::make_shared<JwtVerifier>();
  v->name = name;
  if (auto secret = t.secret("secret")) {
    if (secret->size() < 32) {
      t.fail_at(t.contains("secret") ? "secret" : "secret_env",
                "the HMAC secret of " + t.name() + " must be at least 32 bytes");
    }
    v->keys.push_back(JwtKey::hmac_secret(*secret));
  }
  try {
    if (t.contains("public_key_file")) {
      v->keys.push_back(JwtKey::public_key_pem(read_file(t, "public_key_file", dir)));
    }
    if (t.contains("jwks_file")) {
      const std::string text = read_file(t, "jwks_file", dir);
      bool too_deep = false;
      auto doc = bounded_json::parse(text, &too_deep);
      if (doc.is_discarded()) {
        t.fail_at("jwks_file", "'jwks_file' of " + t.name() +
                                   (too_deep ? " nests deeper than 128 levels" : " is not JSON"));
      }
      auto keys = parse_jwks(doc);
      if (keys.empty()) t.fail_at("jwks_file", "'jwks_file' of " + t.name() + " has no usable key");
      v->keys.insert(v->keys.end(), keys.begin(), keys.end());
    }
  } catch (const std::invalid_argument& e) {
    t.fail(std::string(t.name()) + ": " + e.what());
  }
  if (v->keys.empty()) {
    t.fail(t.name() + " needs a key: 'secret_env', 'public_key_file' or 'jwks_file'");
  }
  if (auto algs = t.each_one_of("algorithms", kJwtAlgorithmNames)) {
    // (A list none of whose algorithms a key verifies refuses every token: RS256 with only an
    // HMAC secret, say.)
    const bool usable = std::any_of(algs->begin(), algs->end(), [&](JwtAlgorithm alg) {
      return std::any_of(v->keys.begin(), v->keys.end(),
                         [alg](const JwtKey& key) { return key.accepts(alg); });
    });
    if (!usable) {
      t.fail_at("algorithms", "no key of " + t.name() +
                                  " verifies any of its 'algorithms': HS* need 'secret', the "
                                  "others a public key or JWKS of their type");
    }
    v->algorithms = *algs;
  }
  v->policy.issuer = t.string("issuer");
  if (auto aud = t.string_array("audience")) v->policy.audiences = *aud;
  if (auto leeway = t.duration("leeway", 0ms, 1h)) {
    v->policy.leeway = std::chrono::duration_cast<std::chrono::seconds>(*leeway);
  }
  v->policy.require_exp = t.boolean("require_exp").value_or(true);
  t.reject_unknown_keys();
  return v;
}

}  // namespace

OriginPolicy parse_origin_policy(ConfigTable& t) {
  OriginPolicy p;
  if (auto allowed = t.string_array("allowed_origins")) {
    for (const auto& o : *allowed) {
      if (auto problem = origin_pattern_problem(o)) {
        t.fail_at("allowed_origins", "origin \"" + o + "\" in " + t.name() + " " + *problem);
      }
    }
    p.allowed = *allowed;
  }
  p.allow_missing = t.boolean("allow_missing_origin").value_or(true);
  return p;
}

AuthSettings parse_auth_settings(ConfigTable& top, const std::filesystem::path& dir) {
  AuthSettings s;
  for (auto& [name, table] : top.named_tables("jwt")) {
    s.verifiers.emplace(name, read_verifier(name, table, dir));
  }
  for (auto& t : top.array_of_tables("api_keys")) {
    ApiKey key;
    key.name = t.required_string("name");
    // The name is the user a key authenticates as ({user} in ACL templates, logs, the admin API).
    if (key.name.empty() || std::any_of(key.name.begin(), key.name.end(), [](char c) {
          return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
        })) {
      t.fail_at("name", "an API key's 'name' must not be empty or hold control characters");
    }
    key.sha256 = t.required_string("sha256");
    key.sha256 = text::lower(key.sha256);
    if (key.sha256.size() != 64 ||
        key.sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
      t.fail_at("sha256", "'sha256' of API key \"" + key.name +
                              "\" must be 64 hex digits (sha256sum of the key)");
    }
    for (const auto& other : s.api_keys) {
      if (other.name == key.name)
        t.fail_at("name", "API key \"" + key.name + "\" is defined twice");
      if (other.sha256 == key.sha256) t.fail_at("sha256", "two API keys have the same hash");
    }
    if (auto claims = t.table("claims")) {
      // TOML to JSON: strings, integers, booleans and arrays of strings are enough for claims.
      for (const auto& [k, v] : claims->raw()) {
        if (v.is_string()) {
          key.claims[std::string(k.str())] = v.as_string()->get();
        } else if (v.is_integer()) {
          key.claims[std::string(k.str())] = v.as_integer()->get();
        } else if (v.is_boolean()) {
          key.claims[std::string(k.str())] = v.as_boolean()->get();
        } else {
          claims->fail_at(k.str(), "claim '" + std::string(k.str()) +
                                       "' must be a string, an integer or a boolean");
        }
      }
    }
    key.acl = read_acl(t);
    t.reject_unknown_keys();
    s.api_keys.push_back(std::move(key));
  }
  return s;
}

RouteAuth parse_route_auth(ConfigTable& t, const AuthSettings& settings) {
  RouteAuth a;
  if (auto name = t.string("jwt")) {
    auto it = settings.verifiers.find(*name);
    if (it == settings.verifiers.end()) {
      t.fail_at("jwt", "unknown JWT verifier \"" + *name + "\": add a [jwt." + *name + "] table");
    }
    a.jwt = it->second;
  }
  a.api_keys = t.boolean("api_keys").value_or(false);
  if (a.api_keys && settings.api_keys.empty()) {
    t.fail_at("api_keys", "'api_keys = true' but no [[api_keys]] are defined");
  }
  a.client_cert = t.boolean("client_cert").value_or(false);
  a.required = t.boolean("required").value_or(a.verifies_credentials());
  if (a.required && !a.verifies_credentials()) {
    t.fail_at("required", "'required = true' needs 'jwt', 'api_keys' or 'client_cert'");
  }
  if (auto sources = t.each_one_of<CredentialSource>(
          "credentials", {{"header", CredentialSource::kHeader},
                          {"query", CredentialSource::kQuery},
                          {"cookie", CredentialSource::kCookie},
                          {"subprotocol", CredentialSource::kSubprotocol},
                          {"mqtt_connect", CredentialSource::kMqttConnect}})) {
    if (sources->empty() && a.verifies_credentials()) {
      t.fail_at("credentials", "'credentials' is empty: no client could present a credential");
    }
    a.sources = *sources;
  }
  if (auto q = t.string("query_param")) {
    // A name with '&', '=', '%' or '#' could never be read back from a query string.
    if (q->empty() || q->find_first_not_of(
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") !=
                          std::string::npos) {
      t.fail_at("query_param", "'query_param' \"" + *q +
                                   "\" must be a non-empty name of letters, digits, '-', '.', "
                                   "'_' and '~'");
    }
    a.query_param = *q;
  }
  if (auto c = t.string("cookie")) {
    // RFC 6265 4.1.1: a cookie-name is an HTTP token.
    if (c->empty() || std::any_of(c->begin(), c->end(), [](char ch) {
          return ch <= 0x20 || ch >= 0x7f || std::strchr("()<>@,;:\\\"/[]?={}", ch) != nullptr;
        })) {
      t.fail_at("cookie", "'cookie' \"" + *c +
                              "\" is not a cookie name (RFC 6265: a token, without spaces or "
                              "any of ()<>@,;:\\\"/[]?={})");
    }
    a.cookie = *c;
  }
  if (auto users = t.string_array("allowed_users")) a.allowed_users = *users;
  if (auto claims = t.table("required_claims")) {
    for (const auto& [k, v] : claims->raw()) {
      std::vector<std::string> values;
      if (v.is_string()) {
        values.push_back(v.as_string()->get());
      } else if (auto arr = claims->string_array(k.str())) {
        values = *arr;
      }
      claims->consume(k.str());
      a.required_claims.emplace(std::string(k.str()), std::move(values));
    }
  }
  a.acl_claim = t.string("acl_claim");
  a.origins = parse_origin_policy(t);
  t.reject_unknown_keys();
  return a;
}

}  // namespace wsbridge::auth
