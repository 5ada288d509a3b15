// The mTLS tests' server (tls_mtls_test.cpp, tls_mtls_fallback_test.cpp): one TLS listener that
// asks for a client certificate from the test client CA ("optional"), a route that requires one
// (/devices) and one that does not (/open), both echo; more routes from the test.
#pragma once

#include <optional>
#include <string>

#include "support/tls_config.hpp"
#include "wsbridge_instance.hpp"

namespace wsbridge::testing {

class Mtls : public ::testing::Test {
 protected:
  void start(const std::string& routes) {
    server_.emplace(R"(
[[listeners]]
address = "127.0.0.1"
port = ${PORT}
)" +
                    tls_table(pki_.server, "client_ca_file = \"" + pki_.client_ca.cert_file() +
                                               "\"\nclient_cert = \"optional\"\n") +
                    R"(
[[routes]]
path = "/devices"
adapter = "echo"
require_client_cert = true
[[routes]]
path = "/open"
adapter = "echo"
)" + routes);
  }
  ClientOptions client(const std::string& path, const IssuedCert* cert) const {
    ClientOptions opts = server_->client(path);
    opts.tls = cert ? with_client_cert(trust_test_ca(), *cert) : trust_test_ca();
    return opts;
  }
  std::optional<int> refused(const std::string& path, const IssuedCert* cert) const {
    try {
      WsClient::connect(client(path, cert));
      return std::nullopt;
    } catch (const HandshakeError& e) {
      return e.response().status;
    }
  }
  const TestPki& pki_ = TestPki::get();
  std::optional<WsbridgeInstance> server_;
};

}  // namespace wsbridge::testing
