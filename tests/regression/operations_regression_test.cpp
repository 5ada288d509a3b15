// Regression tests (#13) for the operations area: each one fails without the fix it names.
//   13  [admin] or a listener binding where another listener already binds is refused.
//   14  the installed unit, binary and config agree, for the prefixes /usr/local and /usr.
//   16  "mqtt" subprotocols are refused on routes that do not speak MQTT packets, and no doc
//       or config suggests one.
//   17  config errors suggest the key meant and say why a file cannot be read; --help names
//       SIGHUP; CONFIG.md documents every metric and adapter; the image's health check, build
//       context and compose file.
// (15, the README's commands: scripts/check-readme.sh, CTest operations.readme_commands; the
// demo page of 17: tests/e2e/browser.test.mjs.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "config/server_config.hpp"
#include "integration/wsbridge_instance.hpp"
#include "wsbridge/adapter_registry.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

class ConfigRegressionTest : public ::testing::Test {
 protected:
  ConfigRegressionTest() { register_builtin_adapters(registry_); }

  void accepts(const std::string& text) {
    try {
      parse_config(text, "test.toml", registry_);
    } catch (const ConfigError& e) {
      ADD_FAILURE() << "refused: " << e.what() << "\n" << text;
    }
  }
  std::string error_of(const std::string& text) {
    try {
      parse_config(text, "test.toml", registry_);
    } catch (const ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << "config was accepted:\n" << text;
    return {};
  }

  AdapterRegistry registry_;
};

std::string listener(const std::string& address, int port) {
  return "[[listeners]]\naddress = \"" + address + "\"\nport = " + std::to_string(port) + "\n";
}

// An empty admin token (inline, or an environment variable set to "") was taken as a token, and
// "Authorization: Bearer " (empty) then opened the REST API: anyone could drain the instance.
// An empty static_dir served the config file's own directory (its secrets) to anyone.
TEST_F(ConfigRegressionTest, AnEmptyAdminTokenOrStaticDirIsRefused) {
  EXPECT_EQ(error_of("[admin]\nport = 9090\ntoken = \"\"\n" + listener("127.0.0.1", 8080)),
            "test.toml:3:9: the admin token is empty: give one, or leave out 'token' and "
            "'token_env' to keep the REST API off");
  ::setenv("WSBRIDGE_TEST_EMPTY_TOKEN", "", 1);
  EXPECT_NE(error_of("[admin]\nport = 9090\ntoken_env = \"WSBRIDGE_TEST_EMPTY_TOKEN\"\n" +
                     listener("127.0.0.1", 8080))
                .find("test.toml:3:13: the admin token is empty"),
            std::string::npos);
  EXPECT_EQ(error_of("[server]\nstatic_dir = \"\"\n" + listener("127.0.0.1", 8080)),
            "test.toml:2:14: 'static_dir' in [server] is empty: leave it out to serve no files");
}

// #13: [admin] on a listener's address and port was accepted; lws then served both from one
// socket and /metrics answered 404.
TEST_F(ConfigRegressionTest, AdminOnAListenersAddressAndPortIsRefused) {
  EXPECT_EQ(error_of("[admin]\nport = 8080\n" + listener("127.0.0.1", 8080)),
            "test.toml:2:8: [admin] 127.0.0.1:8080 overlaps the listener 127.0.0.1:8080 at "
            "test.toml:5:8: the admin listener needs an address and port of its own (else "
            "/metrics and the API answer 404 there): give it another port");
  // A wildcard listener covers the admin's specific address, and the other way round.
  EXPECT_EQ(
      error_of("[admin]\nport = 8080\n" + listener("0.0.0.0", 8080)).rfind("test.toml:2:8: ", 0),
      0u);
  EXPECT_NE(error_of("[admin]\naddress = \"0.0.0.0\"\nport = 8080\n" + listener("127.0.0.1", 8080))
                .find("overlaps the listener 127.0.0.1:8080"),
            std::string::npos);
  EXPECT_NE(error_of("[admin]\naddress = \"::1\"\nport = 8080\n" + listener("::", 8080))
                .find("[admin] [::1]:8080 overlaps the listener [::]:8080"),
            std::string::npos);
  // The same address spelled two ways is the same address.
  EXPECT_NE(error_of("[admin]\naddress = \"0:0::1\"\nport = 8080\n" + listener("::1", 8080))
                .find("overlaps"),
            std::string::npos);
  // Ports of their own, or addresses that do not cover each other, are fine. IPv6 listeners are
  // IPv6-only, so "::" and "0.0.0.0" on one port are the documented dual stack.
  accepts("[admin]\nport = 9090\n" + listener("127.0.0.1", 8080));
  accepts("[admin]\naddress = \"127.0.0.2\"\nport = 8080\n" + listener("127.0.0.1", 8080));
  accepts("[admin]\naddress = \"::1\"\nport = 8080\n" + listener("127.0.0.1", 8080));
  accepts("[admin]\nport = 9090\n" + listener("0.0.0.0", 8080) + listener("::", 8080));
}

TEST_F(ConfigRegressionTest, ListenersThatBindTheSameSocketAreRefused) {
  EXPECT_EQ(error_of(listener("127.0.0.1", 8080) + listener("127.0.0.1", 8080)),
            "test.toml:6:8: listener 127.0.0.1:8080 overlaps the listener 127.0.0.1:8080 at "
            "test.toml:3:8: both would bind port 8080 (the same listener twice)");
  EXPECT_EQ(error_of(listener("0.0.0.0", 8080) + listener("127.0.0.1", 8080)),
            "test.toml:6:8: listener 127.0.0.1:8080 overlaps the listener 0.0.0.0:8080 at "
            "test.toml:3:8: both would bind port 8080 (a wildcard address covers every address "
            "of its family)");
  EXPECT_NE(error_of(listener("::1", 8080) + listener("::", 8080)).find("test.toml:6:8: "),
            std::string::npos);
  EXPECT_NE(error_of(listener("::1", 8080) + listener("0::0:1", 8080)).find("overlaps"),
            std::string::npos);
  accepts(listener("127.0.0.1", 8080) + listener("127.0.0.1", 8081));
  accepts(listener("127.0.0.1", 8080) + listener("127.0.0.2", 8080));
}

// #13 through the executable: --check-config exits 2 with the position.
TEST(CheckConfigRegressionTest, AdminOnAListenersPortFailsTheCheck) {
  const std::string path =
      write_temp_file("admin.toml", "[admin]\nport = 18080\n[[listeners]]\nport = 18080\n");
  ChildProcess check = ChildProcess::spawn({WSBRIDGE_BINARY, "--check-config", path});
  EXPECT_EQ(check.wait_exit(10s), 2);
  EXPECT_NE(check.output().find(path + ":2:8: [admin] 127.0.0.1:18080 overlaps the listener"),
            std::string::npos)
      << check.output();
}

// #16: subprotocols = ["mqtt"] on a route that speaks JSON frames made mqtt.js report garbage
// packets. The check names what the route speaks instead.
TEST_F(ConfigRegressionTest, MqttSubprotocolOnARouteThatDoesNotSpeakMqttIsRefused) {
  const std::string base =
      listener("127.0.0.1", 8080) + "[upstreams.local]\nuri = \"tcp://127.0.0.1:1\"\n";
  EXPECT_EQ(
      error_of(base + "[[routes]]\npath = \"/mqtt\"\nadapter = \"mqtt\"\nupstream = \"local\"\n"
                      "subprotocols = [\"chat\", \"mqtt\"]\n"),
      "test.toml:10:25: subprotocol \"mqtt\" tells MQTT-over-WebSocket clients (mqtt.js, Paho "
      "JS) that route \"/mqtt\" speaks MQTT packets, but it speaks the JSON frames of "
      "docs/PROTOCOL.md (adapter \"mqtt\"): remove it (mode = \"passthrough\" of the mqtt "
      "adapter speaks MQTT)");
  EXPECT_NE(
      error_of(base + "[[routes]]\npath = \"/raw\"\nadapter = \"mqtt\"\nupstream = \"local\"\n"
                      "mode = \"raw\"\nsubscribe = [\"a\"]\nsubprotocols = [\"mqttv3.1\"]\n")
          .find("speaks raw payloads on fixed topics (adapter \"mqtt\", mode \"raw\")"),
      std::string::npos);
  EXPECT_NE(
      error_of(base + "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\nsubprotocols = [\"MQTT\"]\n")
          .find("test.toml:9:17: subprotocol \"MQTT\""),
      std::string::npos);
  EXPECT_NE(error_of(base + "[[routes]]\npath = \"/h\"\nadapter = \"http\"\n"
                            "backend = \"http://127.0.0.1:1\"\nsubprotocols = [\"mqtt\"]\n")
                .find("(adapter \"http\")"),
            std::string::npos);
  accepts(base + "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\nsubprotocols = [\"chat.v1\"]\n");
  // #17: a pass-through route speaks MQTT, so naming its subprotocols is no mistake.
  accepts(base +
          "[[routes]]\npath = \"/p\"\nadapter = \"mqtt\"\nmode = \"passthrough\"\n"
          "upstream = \"local\"\nsubprotocols = [\"mqtt\"]\n");
}

// #17: "[[route]]" got "unknown key 'route' in the top level" with no hint.
TEST_F(ConfigRegressionTest, UnknownKeysSuggestTheNearestKnownOne) {
  EXPECT_EQ(
      error_of(listener("127.0.0.1", 8080) + "[[route]]\npath = \"/e\"\nadapter = \"echo\"\n"),
      "test.toml:4:3: unknown key 'route' in the top level; did you mean [[routes]]?");
  EXPECT_EQ(error_of("[[listener]]\nport = 8080\n").find("; did you mean [[listeners]]?") !=
                std::string::npos,
            true);
  EXPECT_NE(error_of("[servr]\nlog_level = \"info\"\n" + listener("127.0.0.1", 8080))
                .find("unknown key 'servr' in the top level; did you mean [server]?"),
            std::string::npos);
  EXPECT_NE(error_of(listener("127.0.0.1", 8080) + "permessage-deflate = true\n")
                .find("unknown key 'permessage-deflate' in [[listeners]] #1; did you mean "
                      "'permessage_deflate'?"),
            std::string::npos);
  // Adapters' keys are candidates too, read before the route's unknown keys are reported.
  EXPECT_NE(error_of(listener("127.0.0.1", 8080) +
                     "[[routes]]\npath = \"/e\"\nadapter = \"echo\"\nprefx = \"y\"\n")
                .find("unknown key 'prefx' in route \"/e\"; did you mean 'prefix'?"),
            std::string::npos);
  // Nothing close: no guess.
  EXPECT_EQ(error_of("bogus = 1\n" + listener("127.0.0.1", 8080)),
            "test.toml:1:1: unknown key 'bogus' in the top level");
}

TEST(NearestKeyTest, TyposCaseAndTranspositionsButNotStrangers) {
  const std::vector<std::string> keys = {"routes", "listeners", "server", "qos", "mode"};
  EXPECT_EQ(nearest_key("route", keys), "routes");
  EXPECT_EQ(nearest_key("Listeners", keys), "listeners");
  EXPECT_EQ(nearest_key("sever", keys), "server");
  EXPECT_EQ(nearest_key("qso", keys), "qos");
  EXPECT_EQ(nearest_key("foo", keys), std::nullopt);
  EXPECT_EQ(nearest_key("upstreams", keys), std::nullopt);
  EXPECT_EQ(nearest_key("x", {}), std::nullopt);
}

std::string error_of_static_dir(const AdapterRegistry& registry, const std::string& dir) {
  try {
    parse_config("[server]\nstatic_dir = \"" + dir + "\"\n[[listeners]]\nport = 1\n", "test.toml",
                 registry);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "accepted";
}

// #17: a missing or unreadable config file said only "cannot open the config file".
TEST(ConfigFileRegressionTest, AFileThatCannotBeReadSaysWhy) {
  AdapterRegistry registry;
  register_builtin_adapters(registry);
  auto error_of = [&](const std::string& file) -> std::string {
    try {
      load_config_file(file, registry);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "accepted";
  };
  EXPECT_EQ(error_of("/nonexistent/wsbridge.toml"),
            "/nonexistent/wsbridge.toml: cannot open the config file: No such file or directory");
  const std::string dir = temp_dir();
  EXPECT_EQ(error_of(dir), dir + ": cannot read the config file: Is a directory");
  // Bounded: an endless file is an error, not a process that eats all memory.
  EXPECT_EQ(error_of("/dev/zero"), "/dev/zero: cannot read the config file: larger than 16 MiB");
  // A FIFO nobody writes: an error at once (it held a reload, and SIGTERM with it, for ever);
  // one whose writer stalls: an error after 5 s.
  const std::string fifo = dir + "/config.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(error_of(fifo).rfind(fifo + ":", 0), 0u);
  const int writer_side = ::open(fifo.c_str(), O_RDWR | O_NONBLOCK);  // a writer that says nothing
  ASSERT_GE(writer_side, 0);
  EXPECT_EQ(error_of(fifo), fifo + ": cannot read the config file: nothing more came within 5 s");
  ::close(writer_side);
  // The same for the static_dir a config names.
  EXPECT_EQ(error_of_static_dir(registry, dir + "/none"),
            "test.toml:2:14: 'static_dir' in [server]: " + dir +
                "/none is not a readable directory: No such file or directory");
  const std::string file = write_temp_file("plain.txt", "x");
  EXPECT_NE(
      error_of_static_dir(registry, file).find(" is not a readable directory: Not a directory"),
      std::string::npos);
  if (geteuid() != 0) {
    const std::string path = write_temp_file("secret.toml", "[[listeners]]\nport = 1\n");
    std::filesystem::permissions(path, std::filesystem::perms::none);
    EXPECT_EQ(error_of(path), path + ": cannot open the config file: Permission denied");
  }
}

// #17: --help did not say that SIGHUP reloads the config.
TEST(CliRegressionTest, HelpNamesSighup) {
  ChildProcess help = ChildProcess::spawn({WSBRIDGE_BINARY, "--help"});
  EXPECT_EQ(help.wait_exit(10s), 0);
  EXPECT_NE(help.output().find("SIGHUP reloads"), std::string::npos) << help.output();
  // (It said 1001, where the server sends 1012 "service restart" as the docs say.)
  EXPECT_NE(help.output().find("WebSocket with 1012"), std::string::npos) << help.output();
  EXPECT_EQ(help.output().find("1001"), std::string::npos) << help.output();
}

// #14: the unit ran /usr/bin/wsbridge --config /etc/wsbridge/wsbridge.toml whatever the prefix
// (neither exists under /usr/local), said reloading was not supported and had no ExecReload.
// Installs with DESTDIR for both prefixes and checks the tree against itself.
struct InstallCase {
  std::string prefix;
  std::string binary;  // where the unit must run wsbridge from
  std::string config;  // and the config it must name
};

class PackagingRegressionTest : public ::testing::TestWithParam<InstallCase> {};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST_P(PackagingRegressionTest, TheInstalledUnitRunsTheInstalledBinaryOnTheInstalledConfig) {
  const InstallCase& c = GetParam();
  const std::string destdir = temp_dir() + "/destdir" + c.prefix;
  ChildProcess install =
      ChildProcess::spawn({"/usr/bin/cmake", "--install", WSBRIDGE_BUILD_DIR, "--prefix", c.prefix},
                          {"DESTDIR=" + destdir});
  ASSERT_EQ(install.wait_exit(120s), 0) << install.output();

  const std::string unit_path = destdir + c.prefix + "/lib/systemd/system/wsbridge.service";
  const std::string unit = read_file(unit_path);
  ASSERT_FALSE(unit.empty()) << unit_path;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(unit, m, std::regex("\nExecStart=(\\S+) --config (\\S+)\n")))
      << unit;
  const std::string binary = m[1];
  const std::string config = m[2];
  EXPECT_EQ(binary, c.binary);
  EXPECT_EQ(config, c.config);
  EXPECT_TRUE(std::filesystem::is_regular_file(destdir + binary)) << destdir + binary;
  EXPECT_TRUE(std::filesystem::is_regular_file(destdir + config)) << destdir + config;
  // Reloading is supported (SIGHUP), and neither file says otherwise.
  EXPECT_NE(unit.find("\nExecReload=/bin/kill -HUP $MAINPID\n"), std::string::npos) << unit;
  const std::string installed_config = read_file(destdir + config);
  for (const std::string* text : {&unit, &installed_config}) {
    EXPECT_EQ(text->find("not supported"), std::string::npos) << *text;
    EXPECT_EQ(text->find("@WSBRIDGE"), std::string::npos) << *text;  // every placeholder filled
  }
  const std::regex documentation("Documentation=file:(\\S+)");
  for (std::sregex_iterator it(unit.begin(), unit.end(), documentation), end; it != end; ++it) {
    EXPECT_TRUE(std::filesystem::exists(destdir + (*it)[1].str())) << (*it)[1].str();
  }
  ASSERT_TRUE(std::regex_search(installed_config, m, std::regex("static_dir = \"([^\"]+)\"")));
  const std::string web = m[1];
  EXPECT_TRUE(std::filesystem::exists(destdir + web + "/index.html")) << destdir + web;

  // The installed binary accepts the installed config. Its one absolute path, static_dir, is
  // moved under DESTDIR with it (checked to exist there just above); nothing else changes.
  const std::string moved = write_temp_file(
      "installed.toml", std::regex_replace(installed_config, std::regex("static_dir = \"[^\"]+\""),
                                           "static_dir = \"" + destdir + web + "\""));
  ChildProcess check = ChildProcess::spawn({destdir + binary, "--check-config", moved});
  EXPECT_EQ(check.wait_exit(10s), 0) << check.output();

  // systemd-analyze verify checks ExecStart's binary on this machine: point it into DESTDIR.
  if (!std::filesystem::exists("/usr/bin/systemd-analyze")) {
    GTEST_SKIP() << "systemd-analyze is not installed here";
  }
  const std::string verify_dir = temp_dir() + "/verify" + c.prefix;
  std::filesystem::create_directories(verify_dir);
  std::string copy = unit;
  WsbridgeInstance::replace_all(copy, "ExecStart=" + binary, "ExecStart=" + destdir + binary);
  std::ofstream(verify_dir + "/wsbridge.service") << copy;
  ChildProcess verify =
      ChildProcess::spawn({"/usr/bin/systemd-analyze", "verify", verify_dir + "/wsbridge.service"});
  EXPECT_EQ(verify.wait_exit(60s), 0) << verify.output();
  EXPECT_EQ(verify.output().find("wsbridge.service:"), std::string::npos) << verify.output();
}

INSTANTIATE_TEST_SUITE_P(Prefixes, PackagingRegressionTest,
                         ::testing::Values(InstallCase{"/usr/local", "/usr/local/bin/wsbridge",
                                                       "/usr/local/etc/wsbridge/wsbridge.toml"},
                                           InstallCase{"/usr", "/usr/bin/wsbridge",
                                                       "/etc/wsbridge/wsbridge.toml"}),
                         [](const ::testing::TestParamInfo<InstallCase>& param) {
                           return std::string(param.param.prefix == "/usr" ? "Usr" : "UsrLocal");
                         });

std::string source_file(const std::string& relative) {
  return read_file(std::string(WSBRIDGE_SOURCE_DIR) + "/" + relative);
}

// #17: docs/CONFIG.md left out wsbridge_dropped_messages_total. Every metric the code registers
// is documented.
TEST(DocsRegressionTest, EveryMetricIsInConfigMd) {
  const std::string doc = source_file("docs/CONFIG.md");
  const std::regex literal("\"(wsbridge_[a-z0-9_]+)\"");
  int metrics = 0;
  for (const char* dir : {"proxy", "plugins"}) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(
             std::string(WSBRIDGE_SOURCE_DIR) + "/" + dir)) {
      const auto ext = entry.path().extension();
      if (ext != ".cpp" && ext != ".hpp") continue;
      const std::string text = read_file(entry.path());
      for (std::sregex_iterator it(text.begin(), text.end(), literal), end; it != end; ++it) {
        ++metrics;
        const std::string name = (*it)[1];
        EXPECT_TRUE(doc.find("`" + name + "{") != std::string::npos ||
                    doc.find("`" + name + "`") != std::string::npos)
            << name << " (" << entry.path() << ") is not in docs/CONFIG.md";
      }
    }
  }
  EXPECT_GT(metrics, 10);
}

// #17: the `adapter` row said "echo or mqtt".
TEST(DocsRegressionTest, TheAdapterRowNamesEveryAdapter) {
  const std::string doc = source_file("docs/CONFIG.md");
  std::smatch row;
  ASSERT_TRUE(std::regex_search(doc, row, std::regex("\n\\| `adapter` \\|[^\n]*")));
  AdapterRegistry registry;
  register_builtin_adapters(registry);
  for (const auto& name : registry.names()) {
    EXPECT_NE(row.str().find("`" + name + "`"), std::string::npos) << name << ": " << row.str();
  }
}

// #16: docs/CONFIG.md suggested subprotocols = ["mqtt"] for JSON routes. No doc or config does,
// and every config in conf/ passes the check (which refuses it).
TEST(DocsRegressionTest, NoDocOrConfigSuggestsAnMqttSubprotocol) {
  const std::regex suggestion("subprotocols[^\n]*\"mqtt(v3\\.1)?\"|\\[\"mqtt\"\\]");
  std::vector<std::filesystem::path> files = {std::string(WSBRIDGE_SOURCE_DIR) + "/README.md"};
  for (const char* dir : {"docs", "conf", "docker"}) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(
             std::string(WSBRIDGE_SOURCE_DIR) + "/" + dir)) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
  }
  for (const auto& file : files) {
    EXPECT_FALSE(std::regex_search(read_file(file), suggestion)) << file;
  }
  setenv("WSBRIDGE_ADMIN_TOKEN", "test-token", 1);
  for (const char* config : {"conf/wsbridge.toml", "conf/docker/wsbridge.toml"}) {
    // The docker config's static_dir is the image's: point it at the sources' web/.
    const std::string text = std::regex_replace(
        source_file(config), std::regex("static_dir = \"/usr/share/wsbridge/web\""),
        "static_dir = \"" + std::string(WSBRIDGE_SOURCE_DIR) + "/web\"");
    const std::string copy = config == std::string("conf/wsbridge.toml")
                                 ? std::string(WSBRIDGE_SOURCE_DIR) + "/" + config
                                 : write_temp_file("docker.toml", text);
    ChildProcess check = ChildProcess::spawn({WSBRIDGE_BINARY, "--check-config", copy});
    EXPECT_EQ(check.wait_exit(10s), 0) << config << ": " << check.output();
  }
}

// #17: the image's HEALTHCHECK hard-coded port 8080, .dockerignore missed nested node_modules,
// compose exposed no metrics, and docker/README.md said no route used the sample backend.
TEST(DockerRegressionTest, TheHealthCheckFindsTheListenerOfTheConfig) {
  const std::string dockerfile = source_file("docker/Dockerfile");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dockerfile, m, std::regex("HEALTHCHECK[^\n]*\\\\\n([^\n]*)")));
  EXPECT_EQ(m[1].str().find("8080"), std::string::npos) << m[1];
  EXPECT_NE(m[1].str().find("wsbridge-healthcheck"), std::string::npos) << m[1];
  EXPECT_NE(dockerfile.find("COPY docker/healthcheck.sh /usr/local/bin/wsbridge-healthcheck"),
            std::string::npos);
  if (!std::filesystem::exists("/usr/bin/curl")) GTEST_SKIP() << "curl is not installed here";
  // The script on a config whose listener is on a free port, and on one where nothing listens.
  WsbridgeInstance server(
      "[[listeners]]\naddress = \"127.0.0.1\"  # here\nport = ${PORT}\n"
      "[[routes]]\npath = \"/echo\"\nadapter = \"echo\"\n");
  const std::string script = std::string(WSBRIDGE_SOURCE_DIR) + "/docker/healthcheck.sh";
  ChildProcess ok =
      ChildProcess::spawn({"/bin/sh", script}, {"WSBRIDGE_CONFIG=" + server.config_path});
  EXPECT_EQ(ok.wait_exit(10s), 0) << ok.output();
  EXPECT_NE(ok.output().find("\"status\":\"ok\""), std::string::npos) << ok.output();
  const std::string elsewhere = write_temp_file(
      "elsewhere.toml", "[[listeners]]\nport = " + std::to_string(free_tcp_port()) + "\n");
  ChildProcess down = ChildProcess::spawn({"/bin/sh", script}, {"WSBRIDGE_CONFIG=" + elsewhere});
  EXPECT_NE(down.wait_exit(10s), 0) << down.output();
}

TEST(DockerRegressionTest, ContextComposeAndReadme) {
  // BuildKit reads docker/Dockerfile.dockerignore before .dockerignore: one file, at the root.
  EXPECT_FALSE(std::filesystem::exists(std::string(WSBRIDGE_SOURCE_DIR) +
                                       "/docker/Dockerfile.dockerignore"));
  EXPECT_TRUE(
      std::regex_search(source_file(".dockerignore"), std::regex("(^|\n)\\*\\*/node_modules/?\n")));
  // Metrics: an [admin] listener in the container's config, published by compose.
  AdapterRegistry registry;
  register_builtin_adapters(registry);
  setenv("WSBRIDGE_ADMIN_TOKEN", "test-token", 1);
  const std::string text = std::regex_replace(
      source_file("conf/docker/wsbridge.toml"), std::regex("static_dir = \"[^\"]*\""),
      "static_dir = \"" + std::string(WSBRIDGE_SOURCE_DIR) + "/web\"");
  const ServerConfig config = parse_config(text, "conf/docker/wsbridge.toml", registry);
  ASSERT_TRUE(config.admin.has_value());
  const std::string port = std::to_string(config.admin->port);
  EXPECT_NE(source_file("docker/compose.yml").find(":" + port + ":" + port + "\""),
            std::string::npos);
  // docker/README.md no longer says that no route uses the sample backend, which two do.
  int backend_routes = 0;
  for (const auto& route : config.routes) backend_routes += route.adapter_name == "http";
  EXPECT_EQ(backend_routes, 2);
  EXPECT_EQ(source_file("docker/README.md").find("No route uses it"), std::string::npos);
}

}  // namespace
}  // namespace wsbridge::testing
