// #15.8 with clients nobody on this project wrote, against a real wsbridge with a TLS listener:
// python3-websockets with an ssl context trusting the test CA (tests/tls/websockets_client.py)
// and headless Chromium trusting the server key's SPKI hash (tests/e2e/tls_browser.mjs). The
// checks live in the scripts; here we start the server and show their output when they fail.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>

#include "support/tls_config.hpp"
#include "wsbridge_instance.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

const std::string kSource = WSBRIDGE_SOURCE_DIR;

void run_client(const std::vector<std::string>& argv) {
  auto child = ChildProcess::spawn(argv);
  const std::optional<int> status = child.wait_exit(60s);
  if (!status) child.signal(SIGKILL);
  std::string command;
  for (const auto& a : argv) command += a + " ";
  EXPECT_EQ(status, std::optional<int>(0)) << command << "\n" << child.output();
}

class TlsForeign : public ::testing::Test {
 protected:
  const TestPki& pki_ = TestPki::get();
  WsbridgeInstance server_{R"(
[server]
static_dir = "${SOURCE_DIR}/web"
[[listeners]]
address = "127.0.0.1"
port = ${PORT}
)" + tls_table(TestPki::get().server) +
                           R"(
[[routes]]
path = "/echo"
adapter = "echo"
)"};
};

TEST_F(TlsForeign, PythonWebsockets) {
  run_client({"/usr/bin/python3", kSource + "/tests/tls/websockets_client.py", "--port",
              std::to_string(server_.port), "--ca", pki_.ca.cert_file(), "--other-ca",
              pki_.other_ca.cert_file()});
}

TEST_F(TlsForeign, Chromium) {
  const std::string node = WSBRIDGE_NODE;
  if (node.empty()) GTEST_SKIP() << "node not found at configure time";
  if (!std::filesystem::exists(kSource + "/tests/e2e/node_modules/playwright-core")) {
    FAIL() << "tests/e2e/node_modules is incomplete: run (cd tests/e2e && npm ci)";
  }
  run_client({node, kSource + "/tests/e2e/tls_browser.mjs", "--port", std::to_string(server_.port),
              "--spki", spki_sha256_base64(pki_.server.key_pem)});
}

}  // namespace
}  // namespace wsbridge::testing
