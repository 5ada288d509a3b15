// #15.4: certificates reload on SIGHUP (and with watch = true when the files change) without
// dropping anyone: open wss:// connections go on, new handshakes see the new certificate. A bad
// new pair (key mismatch, expired, not yet valid) is refused at reload, the old certificate still
// served and the refusal logged and counted; at start and with --check-config the same files are
// config errors at file:line:column.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>
#include <tuple>

#include "support/eventually.hpp"
#include "support/prometheus.hpp"
#include "support/tls_config.hpp"
#include "wsbridge_instance.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Replaces a file in one step (write aside, rename), as a certificate deployment would: the
// server never reads half a file.
void replace_file(const std::string& path, const std::string& contents) {
  const std::string aside = path + ".new";
  std::ofstream(aside, std::ios::trunc) << contents;
  fs::rename(aside, path);
}

// A directory of its own holding live.crt / live.key, what the config points at.
struct LivePair {
  LivePair() {
    static int n = 0;
    dir = temp_dir() + "/live-" + std::to_string(n++);
    fs::create_directories(dir);
  }
  void install(const IssuedCert& c) const {
    replace_file(cert(), c.cert_pem);
    replace_file(key(), c.key_pem);
  }
  std::string cert() const { return dir + "/live.crt"; }
  std::string key() const { return dir + "/live.key"; }
  std::string dir;
};

std::string config(const LivePair& live, const std::string& tls_extra = "") {
  return R"(
[admin]
address = "127.0.0.1"
port = ${PORT2}
[[listeners]]
address = "127.0.0.1"
port = ${PORT}
[listeners.tls]
cert_file = ")" +
         live.cert() + "\"\nkey_file = \"" + live.key() + "\"\n" + tls_extra + R"(
[[routes]]
path = "/echo"
adapter = "echo"
)";
}

class TlsReload : public ::testing::Test {
 protected:
  void start(const std::string& tls_extra = "") {
    live_.install(pki_.server);
    server_.emplace(config(live_, tls_extra));
  }
  WsClient open() const {
    ClientOptions opts = server_->client("/echo");
    opts.tls = trust_test_ca();
    return WsClient::connect(opts);
  }
  // The serial of the certificate a new handshake gets.
  std::string served_serial() const {
    return TcpConn::connect("127.0.0.1", server_->port, trust_test_ca()).tls_info().peer_serial;
  }
  bool wait_serial(const std::string& serial, std::chrono::milliseconds timeout) const {
    return eventually([&] { return served_serial() == serial; }, timeout, 100ms);
  }
  double metric(const std::string& series) const {
    return sample(http_get("127.0.0.1", server_->port2, "/metrics").body, series).value_or(0);
  }
  // The notAfter the expiry gauge publishes for live.crt (whatever its other labels).
  std::optional<double> expiry_gauge() const {
    std::istringstream in(http_get("127.0.0.1", server_->port2, "/metrics").body);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("wsbridge_tls_certificate_expiry_timestamp_seconds{", 0) == 0 &&
          line.find("live.crt\"") != std::string::npos) {
        return std::stod(line.substr(line.rfind(' ') + 1));
      }
    }
    return std::nullopt;
  }
  static void expect_echo(WsClient& ws, const std::string& text) {
    ws.send_text(text);
    EXPECT_EQ(ws.read_message(3s).data, text);
  }

  const TestPki& pki_ = TestPki::get();
  LivePair live_;
  std::optional<WsbridgeInstance> server_;
};

TEST_F(TlsReload, SighupServesTheNewCertificateAndKeepsConnections) {
  start();
  EXPECT_EQ(served_serial(), pki_.server.serial_hex);
  EXPECT_EQ(expiry_gauge(), static_cast<double>(pki_.server.not_after));
  std::vector<WsClient> open_ones;
  for (int i = 0; i < 3; ++i) open_ones.push_back(open());
  expect_echo(open_ones[0], "before");
  const std::string series = "wsbridge_tls_certificate_reloads_total{result=\"ok\"}";
  const double reloads = metric(series);

  live_.install(pki_.server_renewed);
  server_->process->signal(SIGHUP);
  EXPECT_TRUE(wait_serial(pki_.server_renewed.serial_hex, 5s)) << server_->process->output();
  for (std::size_t i = 0; i < open_ones.size(); ++i) {
    expect_echo(open_ones[i], "after " + std::to_string(i));
    EXPECT_EQ(open_ones[i].tcp().tls_info().peer_serial, pki_.server.serial_hex);
  }
  WsClient fresh = open();
  EXPECT_EQ(fresh.tcp().tls_info().peer_serial, pki_.server_renewed.serial_hex);
  expect_echo(fresh, "new");
  EXPECT_EQ(expiry_gauge(), static_cast<double>(pki_.server_renewed.not_after));
  EXPECT_EQ(metric(series), reloads + 1);
}

TEST_F(TlsReload, BadPairsAreRefusedAndTheOldCertificateStays) {
  start();
  WsClient ws = open();
  const std::string refused = "wsbridge_tls_certificate_reloads_total{result=\"refused\"}";
  const double before = metric(refused);
  // Each bad pair with (part of) the reason the log must give, and the position of the value.
  const std::vector<std::tuple<const IssuedCert*, std::string, std::string>> bad = {
      {&pki_.mismatched, "does not belong", ":10:12: "},
      {&pki_.expired, "expired", ":9:13: "},
      {&pki_.not_yet_valid, "not valid before", ":9:13: "}};
  int refusals = 0;
  for (const auto& [pair, reason, where] : bad) {
    SCOPED_TRACE(reason);
    live_.install(*pair);
    server_->process->signal(SIGHUP);
    ++refusals;
    EXPECT_TRUE(server_->process->wait_for_output(server_->config_path + where, 5s));
    EXPECT_TRUE(server_->process->wait_for_output(reason, 1s));
    EXPECT_EQ(served_serial(), pki_.server.serial_hex);
    expect_echo(ws, "still here");
    EXPECT_EQ(metric(refused), before + refusals);
  }
  // A good pair afterwards is taken.
  live_.install(pki_.server_renewed);
  server_->process->signal(SIGHUP);
  EXPECT_TRUE(wait_serial(pki_.server_renewed.serial_hex, 5s));
  expect_echo(ws, "and still");
}

TEST_F(TlsReload, WatchReloadsChangedFilesWithoutASignal) {
  start("watch = true\n");
  WsClient ws = open();
  live_.install(pki_.server_renewed);
  EXPECT_TRUE(wait_serial(pki_.server_renewed.serial_hex, 6s)) << server_->process->output();
  expect_echo(ws, "untouched");
}

// The bad files of a config() that names them on line 9 (cert_file) and 10 (key_file), the
// values at columns 13 and 12.
struct BadFiles {
  const char* what;
  std::function<void(const LivePair&)> make;
  int line;
  int column;
  const char* message;
};

TEST(TlsConfigErrors, BadFilesAreConfigErrorsWithTheirPosition) {
  const TestPki& pki = TestPki::get();
  const std::vector<BadFiles> cases = {
      {"mismatch", [&](const LivePair& l) { l.install(pki.mismatched); }, 10, 12,
       "does not belong"},
      {"expired", [&](const LivePair& l) { l.install(pki.expired); }, 9, 13, "expired"},
      {"not yet valid", [&](const LivePair& l) { l.install(pki.not_yet_valid); }, 9, 13, "valid"},
      {"unreadable", [](const LivePair& l) { fs::remove(l.cert()); }, 9, 13, "live.crt"},
      {"not PEM",
       [&](const LivePair& l) {
         l.install(pki.server);
         replace_file(l.key(), "this is not a key\n");
       },
       10, 12, "PEM"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    LivePair live;
    live.install(pki.server);
    c.make(live);
    std::string text = config(live);
    WsbridgeInstance::replace_all(text, "${PORT2}", "1");
    WsbridgeInstance::replace_all(text, "${PORT}", "2");
    const std::string path = write_temp_file("tls-bad.toml", text);
    const std::string where = path + ":" + std::to_string(c.line) + ":" + std::to_string(c.column);
    ChildProcess check = ChildProcess::spawn({WSBRIDGE_BINARY, "--check-config", path});
    EXPECT_EQ(check.wait_exit(10s), 2);
    EXPECT_NE(check.output().find(where), std::string::npos) << check.output();
    EXPECT_NE(check.output().find(c.message), std::string::npos) << check.output();
    // Starting with it is the same error, before anything listens.
    ChildProcess run = ChildProcess::spawn({WSBRIDGE_BINARY, "--config", path});
    EXPECT_EQ(run.wait_exit(10s), 2);
    EXPECT_NE(run.output().find(where), std::string::npos) << run.output();
  }
  // The good pair passes the same check (so the errors above are the files').
  LivePair good;
  good.install(pki.server);
  std::string text = config(good);
  WsbridgeInstance::replace_all(text, "${PORT2}", "1");
  WsbridgeInstance::replace_all(text, "${PORT}", "2");
  ChildProcess ok =
      ChildProcess::spawn({WSBRIDGE_BINARY, "--check-config", write_temp_file("tls.toml", text)});
  EXPECT_EQ(ok.wait_exit(10s), 0) << ok.output();
}

}  // namespace
}  // namespace wsbridge::testing
