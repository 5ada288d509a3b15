// Which [[proxy]] configurations get the start-up warning that a public prefix's relayed
// WebSockets reach a guarded prefix's backend (proxy/src/reverse_proxy/tunnel_exposure.cpp).
#include "reverse_proxy/tunnel_exposure.hpp"

#include <gtest/gtest.h>

namespace wsbridge::reverse_proxy {
namespace {

std::shared_ptr<const ProxyRoute> prefix(std::string path, std::string host, std::uint16_t port,
                                         bool guarded, bool websocket = true, bool tls = false) {
  auto r = std::make_shared<ProxyRoute>();
  r->path = std::move(path);
  r->backend.host = std::move(host);
  r->backend.port = port;
  r->backend.tls = tls;
  r->has_auth = guarded;
  r->websocket = websocket;
  return r;
}

TEST(TunnelExposure, APublicTunnelToAGuardedPrefixsBackendIsNamed) {
  const auto warnings = tunnel_exposure_warnings({prefix("/", "app", 8080, false),
                                                  prefix("/admin", "app", 8080, true),
                                                  prefix("/ops", "app", 8080, true)});
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("\"/\" relays WebSocket upgrades"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("\"/admin\", \"/ops\""), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("websocket = false"), std::string::npos);
}

TEST(TunnelExposure, NothingToSayWhenNoPublicTunnelSharesAGuardedBackend) {
  // No upgrades relayed on the public prefix.
  EXPECT_TRUE(tunnel_exposure_warnings(
                  {prefix("/", "app", 8080, false, false), prefix("/admin", "app", 8080, true)})
                  .empty());
  // The guarded prefix has a backend of its own: another port, host or scheme.
  for (const auto& admin :
       {prefix("/admin", "app", 8081, true), prefix("/admin", "adm", 8080, true),
        prefix("/admin", "app", 8080, true, true, true)}) {
    EXPECT_TRUE(tunnel_exposure_warnings({prefix("/", "app", 8080, false), admin}).empty());
  }
  // Every prefix guarded, or none.
  EXPECT_TRUE(tunnel_exposure_warnings(
                  {prefix("/", "app", 8080, true), prefix("/admin", "app", 8080, true)})
                  .empty());
  EXPECT_TRUE(
      tunnel_exposure_warnings({prefix("/", "app", 8080, false), prefix("/b", "app", 8080, false)})
          .empty());
}

}  // namespace
}  // namespace wsbridge::reverse_proxy
