// Values that load but that no client could ever use are config errors at their key: a route
// asking for client certificates no listener asks for, a route path requests never match, a
// credential name that cannot be read back from a request, a name that is empty or listed twice.
// Each was accepted before, and the route then refused everyone (or ignored the setting) with
// nothing said at startup.
#include <gtest/gtest.h>

#include "proxy/config/config_fixture.hpp"
#include "support/test_ca.hpp"

namespace wsbridge {
namespace {

using testing::ConfigTest;
using testing::TestPki;

const std::string kPlainListener = "[[listeners]]\nport = 8080\n";  // lines 1-2
const std::string kEcho = "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\n";

// A TLS listener on lines 1-5; with a client CA when `mtls`.
std::string tls_listener(bool mtls) {
  const TestPki& pki = TestPki::get();
  std::string s = "[[listeners]]\nport = 8443\n[listeners.tls]\ncert_file = \"" +
                  pki.server.cert_file + "\"\nkey_file = \"" + pki.server.key_file + "\"\n";
  if (mtls) s += "client_ca_file = \"" + pki.client_ca.cert_file() + "\"\n";
  return s;
}

TEST_F(ConfigTest, ARouteAskingForAClientCertificateNeedsAListenerThatVerifiesOne) {
  const std::string route = "[[routes]]\npath = \"/d\"\nadapter = \"echo\"\n";
  const std::string required = route + "require_client_cert = true\n";
  EXPECT_EQ(error_of(kPlainListener + required),
            "test.toml:6:23: route \"/d\" asks for a client certificate, but no listener verifies "
            "one: add 'client_ca_file' to a [listeners.tls] table (docs/TLS.md, mTLS)");
  // A TLS listener that asks for no certificate is no better.
  EXPECT_TRUE(error_of(tls_listener(false) + required).starts_with("test.toml:9:23: route \"/d\""));
  const std::string by_certificate = route + "[routes.auth]\nclient_cert = true\n";
  EXPECT_TRUE(error_of(kPlainListener + by_certificate)
                  .starts_with("test.toml:7:15: route \"/d\" asks for a client certificate"));
  // Accepted as soon as one listener verifies certificates (a device port beside a plain one).
  const ServerConfig c = parse(kPlainListener + tls_listener(true) + required);
  EXPECT_TRUE(c.routes[0].require_client_cert);
  EXPECT_TRUE(parse(tls_listener(true) + by_certificate).routes[0].auth.client_cert);
}

TEST_F(ConfigTest, AListenersOwnAuthByCertificateNeedsItsOwnClientCa) {
  // The plain listener's routes could never see a certificate, even with an mTLS listener beside.
  EXPECT_TRUE(error_of(tls_listener(true) + kPlainListener +
                       "[listeners.auth]\nclient_cert = true\n" + kEcho)
                  .starts_with("test.toml:10:15: 'client_cert = true' in [[listeners]] #2.auth, "
                               "but this listener verifies no client certificate"));
  EXPECT_TRUE(parse(tls_listener(true) + "[listeners.auth]\nclient_cert = true\n" + kEcho)
                  .listeners[0]
                  .auth->client_cert);
}

TEST_F(ConfigTest, AProxyAskingForAClientCertificateNeedsAListenerThatVerifiesOne) {
  EXPECT_TRUE(error_of(kPlainListener +
                       "[[proxy]]\npath = \"/legacy\"\nbackend = \"http://127.0.0.1:1\"\n"
                       "[proxy.auth]\nclient_cert = true\n")
                  .starts_with("test.toml:7:15: route \"/legacy\" asks for a client certificate"));
}

TEST_F(ConfigTest, ARoutePathWithAPercentIsAnError) {
  EXPECT_EQ(error_of(kPlainListener + "[[routes]]\npath = \"/a%20b\"\nadapter = \"echo\"\n"),
            "test.toml:4:8: route path \"/a%20b\" must not contain '%': requests are matched after "
            "their %XX escapes are decoded, so write the character itself");
}

TEST_F(ConfigTest, ASubprotocolListedTwiceIsAnError) {
  EXPECT_EQ(error_of(kPlainListener + kEcho + "subprotocols = [\"chat\", \"v2\", \"chat\"]\n"),
            "test.toml:6:16: subprotocol \"chat\" is listed twice");
}

TEST_F(ConfigTest, CredentialNamesMustBeReadableFromARequest) {
  const std::string jwt = "[jwt.main]\nsecret = \"0123456789abcdef0123456789abcdef\"\n";
  const std::string route = kEcho + "[routes.auth]\njwt = \"main\"\n";  // lines 5-9
  EXPECT_EQ(error_of(kPlainListener + jwt + route + "query_param = \"\"\n"),
            "test.toml:10:15: 'query_param' \"\" must be a non-empty name of letters, digits, "
            "'-', '.', '_' and '~'");
  EXPECT_TRUE(error_of(kPlainListener + jwt + route + "query_param = \"a&b\"\n")
                  .starts_with("test.toml:10:15: 'query_param' \"a&b\" must be"));
  EXPECT_EQ(error_of(kPlainListener + jwt + route + "cookie = \"a;b\"\n"),
            "test.toml:10:10: 'cookie' \"a;b\" is not a cookie name (RFC 6265: a token, without "
            "spaces or any of ()<>@,;:\\\"/[]?={})");
  EXPECT_TRUE(error_of(kPlainListener + jwt + route + "cookie = \"\"\n")
                  .starts_with("test.toml:10:10: 'cookie' \"\" is not a cookie name"));
  EXPECT_TRUE(error_of(kPlainListener + jwt + route + "cookie = \"s\xc3\xa9\"\n")
                  .starts_with("test.toml:10:10: 'cookie'"));
  const ServerConfig c =
      parse(kPlainListener + jwt + route + "query_param = \"t.k-1_~\"\ncookie = \"__Host-tok\"\n");
  EXPECT_EQ(c.routes[0].auth.query_param, "t.k-1_~");
  EXPECT_EQ(c.routes[0].auth.cookie, "__Host-tok");
}

TEST_F(ConfigTest, AnErrorShowsTheControlCharactersOfAValueEscaped) {
  // The value is echoed in the message: its control characters must not reach the terminal raw,
  // and a NUL must not cut the message (what() is read as a C string) before the reason.
  const std::string jwt = "[jwt.main]\nsecret = \"0123456789abcdef0123456789abcdef\"\n";
  const std::string route = kEcho + "[routes.auth]\njwt = \"main\"\n";  // lines 5-9
  const std::string cookie =
      error_of(kPlainListener + jwt + route + "cookie = \"a\\u0001\\u001b[2J\"\n");
  EXPECT_TRUE(
      cookie.starts_with("test.toml:10:10: 'cookie' \"a\\x01\\x1B[2J\" is not a cookie name"))
      << cookie;
  const std::string path =
      error_of(kPlainListener + "[[routes]]\npath = \"/a\\u0000b\"\nadapter = \"echo\"\n");
  EXPECT_EQ(std::string(path.c_str()), path);  // no NUL left to cut it
  EXPECT_TRUE(path.starts_with("test.toml:4:8: route path \"/a\\x00b\"")) << path;
  EXPECT_NE(path.find("must be printable without spaces"), std::string::npos) << path;
}

TEST_F(ConfigTest, EmptyNamesAreErrors) {
  // An API key's name is the user it authenticates as.
  EXPECT_EQ(error_of(kPlainListener + "[[api_keys]]\nname = \"\"\nsha256 = \"" +
                     std::string(64, 'a') + "\"\n"),
            "test.toml:4:8: an API key's 'name' must not be empty or hold control characters");
  EXPECT_TRUE(error_of(kPlainListener + "[[api_keys]]\nname = \"a\\u0000b\"\nsha256 = \"" +
                       std::string(64, 'a') + "\"\n")
                  .starts_with("test.toml:4:8: an API key's 'name' must not be empty"));
  EXPECT_EQ(
      error_of(kPlainListener + "[jwt.\"\"]\nsecret = \"0123456789abcdef0123456789abcdef\"\n"),
      "test.toml:3:1: '[jwt.\"\"]' has an empty name: give it one");
  EXPECT_TRUE(error_of(kPlainListener + "[upstreams.\"\"]\nuri = \"tcp://127.0.0.1:1883\"\n")
                  .starts_with("test.toml:3:1: '[upstreams.\"\"]' has an empty name"));
}

}  // namespace
}  // namespace wsbridge
