// JWT verification: a token's parts, header, key choice and claims (keys: jwt_keys.cpp,
// signatures: jwt_signature.cpp). Everything that touches attacker-controlled input (the token) is
// strict: one canonical base64url form, one accepted set of algorithms, keys bound to the
// algorithm family they were made for, and no error reason that echoes any part of the token.
#include "auth/jwt.hpp"

#include <cmath>
#include <string>
#include <utility>

#include "auth/jwt_internal.hpp"
#include "wsbridge/bounded_json.hpp"

namespace wsbridge::auth {
using namespace jwt_internal;  // NOLINT(google-build-using-namespace): this verifier's own
                               // internals

namespace {

bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

JwtError fail(std::string reason) {
  return JwtError{std::move(reason)};
}

// Reads an optional NumericDate claim. False when it is present but not a number.
bool numeric_claim(const nlohmann::json& claims, const char* name, std::optional<double>& out) {
  const auto it = claims.find(name);
  if (it == claims.end()) return true;
  if (!it->is_number()) return false;  // nlohmann: booleans are not numbers
  const double value = it->get<double>();
  if (!std::isfinite(value)) return false;
  out = value;
  return true;
}

// exp as a time_point, saturating where system_clock cannot represent it (its nanosecond
// duration ends in 2262), so that a far-future exp cannot overflow.
std::chrono::system_clock::time_point to_time_point(double seconds) {
  using Clock = std::chrono::system_clock;
  const double limit =
      std::chrono::duration<double>(Clock::duration::max()).count() * 0.99;  // margin for rounding
  if (seconds >= limit) return Clock::time_point::max();
  if (seconds <= -limit) return Clock::time_point::min();
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)));
}

}  // namespace

std::optional<JwtAlgorithm> parse_jwt_algorithm(std::string_view name) {
  for (const auto& [entry_name, alg] : kJwtAlgorithmNames) {
    if (entry_name == name) return alg;  // case-sensitive, as RFC 7515 requires
  }
  return std::nullopt;
}

std::variant<VerifiedToken, JwtError> verify_jwt(std::string_view token,
                                                 const std::vector<JwtKey>& keys,
                                                 const JwtPolicy& policy,
                                                 std::chrono::system_clock::time_point now) {
  OpenSslErrorScope errors;
  if (token.size() > policy.max_token_bytes) return fail("token too large");

  const std::size_t dot1 = token.find('.');
  const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return fail("malformed token: not three parts");
  }
  const std::string_view signing_input = token.substr(0, dot2);
  std::optional<std::string> header_bytes = base64url_decode(token.substr(0, dot1));
  std::optional<std::string> payload_bytes =
      base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  std::optional<std::string> signature = base64url_decode(token.substr(dot2 + 1));
  if (!header_bytes || !payload_bytes || !signature) return fail("malformed token: bad base64url");

  nlohmann::json header = bounded_json::parse(*header_bytes);
  if (header.is_discarded() || !header.is_object()) return fail("malformed header");

  const auto alg_member = header.find("alg");
  if (alg_member == header.end()) return fail("alg missing");
  if (!alg_member->is_string()) return fail("alg not a string");
  const std::string& alg_name = alg_member->get_ref<const std::string&>();
  if (ascii_iequals(alg_name, "none")) return fail("alg none refused");
  const std::optional<JwtAlgorithm> alg = parse_jwt_algorithm(alg_name);
  if (!alg) return fail("alg not supported");
  // No extension is understood, so RFC 7515 section 4.1.11 requires rejecting any "crit".
  if (header.contains("crit")) return fail("crit refused");

  const std::string* kid = nullptr;
  if (const auto it = header.find("kid"); it != header.end()) {
    if (!it->is_string()) return fail("kid not a string");
    kid = &it->get_ref<const std::string&>();
  }

  bool kid_found = false;
  bool key_for_alg = false;
  bool verified = false;
  for (const JwtKey& key : keys) {
    // A key with a kid answers only tokens naming it; a key without one (a configured secret or
    // PEM key) is a candidate for every token, as identity providers put a kid in all of them.
    if (kid != nullptr && !key.kid().empty() && key.kid() != *kid) continue;
    kid_found = true;
    if (!key.accepts(*alg)) continue;
    key_for_alg = true;
    if (verify_signature(key.impl(), *alg, signing_input, *signature)) {
      verified = true;
      break;
    }
  }
  if (!verified) {
    if (kid != nullptr && !kid_found) return fail("unknown kid");
    if (!key_for_alg) return fail("no key for alg");
    return fail("bad signature");
  }

  // The payload is parsed only once the signature holds: unauthenticated input reaches the JSON
  // parser as little as possible.
  nlohmann::json claims = bounded_json::parse(*payload_bytes);
  if (claims.is_discarded() || !claims.is_object()) return fail("malformed payload");

  const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
  const double leeway = static_cast<double>(policy.leeway.count());
  std::optional<double> exp;
  std::optional<double> nbf;
  std::optional<double> iat;
  if (!numeric_claim(claims, "exp", exp)) return fail("exp not a number");
  if (!numeric_claim(claims, "nbf", nbf)) return fail("nbf not a number");
  if (!numeric_claim(claims, "iat", iat)) return fail("iat not a number");
  if (!exp && policy.require_exp) return fail("exp missing");
  if (exp && now_s > *exp + leeway) return fail("expired");
  if (nbf && now_s + leeway < *nbf) return fail("not yet valid");
  if (iat && *iat > now_s + leeway) return fail("issued in the future");

  if (policy.issuer) {
    const auto iss = claims.find("iss");
    if (iss == claims.end() || !iss->is_string() ||
        iss->get_ref<const std::string&>() != *policy.issuer) {
      return fail("issuer mismatch");
    }
  }

  if (!policy.audiences.empty()) {
    const auto aud = claims.find("aud");
    if (aud == claims.end()) return fail("aud missing");
    auto wanted = [&policy](const nlohmann::json& value) {
      for (const std::string& audience : policy.audiences) {
        if (value.get_ref<const std::string&>() == audience) return true;
      }
      return false;
    };
    bool match = false;
    if (aud->is_string()) {
      match = wanted(*aud);
    } else if (aud->is_array()) {
      for (const auto& value : *aud) {
        if (!value.is_string()) return fail("aud not a string or array of strings");
        match = match || wanted(value);
      }
    } else {
      return fail("aud not a string or array of strings");
    }
    if (!match) return fail("audience mismatch");
  }

  VerifiedToken result;
  if (const auto sub = claims.find("sub"); sub != claims.end()) {
    if (!sub->is_string()) return fail("sub not a string");
    result.subject = sub->get<std::string>();
  }
  if (exp) result.expires_at = to_time_point(*exp);
  result.header = std::move(header);
  result.claims = std::move(claims);
  return result;
}

}  // namespace wsbridge::auth
