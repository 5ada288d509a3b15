// The token of a fallback session (docs/FALLBACK.md): "v3.<instance>.<run>.<connection
// id>.<expiry>.<mac>", the instance in base64url, the run a random name of the process that
// issued it (16 hex digits), the mac an HMAC-SHA256 (base64url, 128 bits kept) over the instance,
// the run, the connection id, the expiry and what the token is bound to (below). It proves
// itself, so no store is shared between shards or instances: whoever holds the key can tell which
// instance issued it, for which connection and until when (and forward a request to that
// instance). The run is what the issuing instance checks: connection ids start at 1 again when a
// process restarts, and an instance's tokens from its previous run, still within their expiry,
// would otherwise name whichever session now has their number.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "support/hmac.hpp"

namespace wsbridge::fallback {

// What a token is bound to besides its session: the route it was opened on, and the client
// certificate (its SHA-256 fingerprint, "" for none) the opening request presented. A token
// verifies only with both, so it is not a bearer credential that outlives the mTLS check that
// admitted the session, and it cannot carry a session to another route's URL (whose Origin list,
// size limits and certificate rule are not the session's).
struct TokenBinding {
  std::string_view route;
  std::string_view client_cert;
};

class SessionTokens {
 public:
  // `secret` empty: a random key of this process (tokens die with it). `run` empty: a random
  // one (tests give their own).
  SessionTokens(std::string instance, std::string_view secret, std::string run = {});

  std::string issue(std::uint64_t connection, std::chrono::system_clock::time_point expiry,
                    const TokenBinding& binding) const;

  struct Named {
    std::string instance;  // the instance that issued it, which owns the session
    std::uint64_t connection = 0;
    bool mine = false;  // that instance is this one (this run of it: else the token is refused)
  };
  // What a token names, if it verifies for `binding`, has not expired at `now` and, when it names
  // this instance, was issued by this run of it.
  std::optional<Named> verify(std::string_view token, std::chrono::system_clock::time_point now,
                              const TokenBinding& binding) const;
  // A request forwarded to the session's instance arrives without the client's TLS connection:
  // the forwarding instance vouches for the certificate it verified ("<fingerprint>.<mac>", the
  // mac over the token and the fingerprint), and the owner takes the fingerprint from that.
  std::string vouch(std::string_view token, std::string_view client_cert) const;
  // The fingerprint a vouch() for `token` names; nullopt when it was not made with this key.
  std::optional<std::string> vouched(std::string_view token, std::string_view vouch) const;
  const std::string& instance() const { return instance_; }

 private:
  std::string mac(std::string_view instance, std::string_view run, std::uint64_t connection,
                  std::int64_t expiry, const TokenBinding& binding) const;
  std::string instance_;
  std::string run_;
  HmacSha256 hmac_;  // keyed once: a token is checked on every request of its session
};

}  // namespace wsbridge::fallback
