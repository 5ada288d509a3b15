// The wsbridge executable as a user runs it: command line, config errors with their positions
// and exit status 2, connection logs, and a graceful SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>
#include <fstream>
#include <string_view>
#include <thread>

#include "wsbridge_instance.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;

struct Outcome {
  int status;
  std::string output;
};

Outcome run(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {WSBRIDGE_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  ChildProcess p = ChildProcess::spawn(argv);
  auto status = p.wait_exit(10s);
  EXPECT_TRUE(status.has_value()) << "wsbridge did not exit";
  return Outcome{status.value_or(-1), p.output()};
}

TEST(ProcessTest, VersionAndHelp) {
  auto v = run({"--version"});
  EXPECT_EQ(v.status, 0);
  EXPECT_EQ(v.output.rfind("wsbridge 0.", 0), 0u) << v.output;
  auto h = run({"--help"});
  EXPECT_EQ(h.status, 0);
  EXPECT_NE(h.output.find("--check-config FILE"), std::string::npos);
  auto bad = run({"--bogus"});
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.output.find("unknown argument \"--bogus\""), std::string::npos);
}

TEST(ProcessTest, CheckConfigAcceptsTheDefaultConfig) {
  auto r = run({"--check-config", std::string(WSBRIDGE_SOURCE_DIR) + "/conf/wsbridge.toml"});
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("ok"), std::string::npos);
}

TEST(ProcessTest, ConfigErrorsExitWith2AndAPositionWithoutListening) {
  const uint16_t port = free_tcp_port();
  const std::string path = write_temp_file(
      "bad.toml", "[[listeners]]\nport = " + std::to_string(port) +
                      "\n[[routes]]\npath = \"/e\"\nadapter = \"echo\"\nprefix = 42\n");
  for (const char* flag : {"--config", "--check-config"}) {
    auto r = run({flag, path});
    EXPECT_EQ(r.status, 2) << flag;
    EXPECT_NE(r.output.find(path + ":6:10: 'prefix' in route \"/e\" must be a string"),
              std::string::npos)
        << r.output;
    // (Probing the port would race with other tests that may take it: the log says enough.)
    EXPECT_EQ(r.output.find("listening on"), std::string::npos) << r.output;
  }
}

TEST(ProcessTest, SyntaxErrorAndUnknownAdapterAndDuplicatePath) {
  const std::string syntax = write_temp_file("syntax.toml", "[[listeners]\nport = 1\n");
  auto r = run({"--check-config", syntax});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.output.rfind(syntax + ":1:", 0), 0u) << r.output;

  const std::string unknown = write_temp_file(
      "unknown.toml", "[[listeners]]\nport = 1\n[[routes]]\npath = \"/x\"\nadapter = \"nope\"\n");
  r = run({"--check-config", unknown});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find(unknown + ":5:11: unknown adapter \"nope\""), std::string::npos)
      << r.output;

  const std::string missing = std::string(WSBRIDGE_SOURCE_DIR) + "/no/such/file.toml";
  r = run({"--config", missing});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find(missing + ": cannot open the config file"), std::string::npos);
}

TEST(ProcessTest, PortInUseIsARuntimeFailure) {
  WsbridgeInstance first("[[listeners]]\nport = ${PORT}\n");
  const std::string second =
      write_temp_file("second.toml", "[[listeners]]\nport = " + std::to_string(first.port) + "\n");
  auto r = run({"--config", second});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("cannot listen on 127.0.0.1 port " + std::to_string(first.port)),
            std::string::npos)
      << r.output;
}

TEST(ProcessTest, SecretsFromMissingEnvironmentVariablesAreConfigErrors) {
  // The echo adapter has no secrets, but every table read through ConfigTable::secret does; the
  // unit tests cover that path. Here: an unknown key with an _env suffix is still unknown.
  const std::string path =
      write_temp_file("env.toml",
                      "[[listeners]]\nport = 1\n[[routes]]\npath = \"/x\"\nadapter = \"echo\"\n"
                      "prefix_env = \"HOME\"\n");
  auto r = run({"--check-config", path});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find(path + ":6:1: unknown key 'prefix_env'"), std::string::npos) << r.output;
}

TEST(ProcessTest, LogsEachConnectionOpenAndClose) {
  WsbridgeInstance server(
      "[[listeners]]\nport = ${PORT}\n[[routes]]\npath = \"/echo\"\n"
      "adapter = \"echo\"\n");
  {
    WsClient ws = WsClient::connect(server.client("/echo"));
    ws.send_text("hi");
    ws.read_message();
    ws.send_close(1000, "bye");
    EXPECT_EQ(ws.wait_close(), 1000);
  }
  ASSERT_TRUE(server.process->wait_for_output("close remote=", 5s)) << server.process->output();
  const std::string out = server.process->output();
  // The first connection is 1 on one thread; with several, whichever shard took it numbers it.
  const auto open = out.find(" open remote=127.0.0.1 path=/echo");
  ASSERT_NE(open, std::string::npos) << out;
  const auto conn = out.rfind("conn ", open);
  const std::string id = out.substr(conn + 5, open - conn - 5);
  const char* threads = std::getenv("WSBRIDGE_TEST_THREADS");
  if (threads != nullptr && std::string_view(threads) == "1") {
    EXPECT_EQ(id, "1") << out;
  }
  EXPECT_NE(
      out.find("conn " + id + " close remote=127.0.0.1 path=/echo code=1000 by=peer duration="),
      std::string::npos)
      << out;
}

TEST(ProcessTest, LogLevelErrorSilencesConnectionLogs) {
  WsbridgeInstance server(
      "[server]\nlog_level = \"error\"\n[[listeners]]\nport = ${PORT}\n"
      "[[routes]]\npath = \"/echo\"\nadapter = \"echo\"\n");
  {
    WsClient ws = WsClient::connect(server.client("/echo"));
    ws.send_close(1000);
    ws.wait_close();
  }
  server.process->signal(SIGTERM);
  EXPECT_EQ(server.process->wait_exit(10s), 0);
  EXPECT_EQ(server.process->output().find("conn 1"), std::string::npos);
}

TEST(ProcessTest, SigtermClosesEveryWebSocketWith1012AndExitsZero) {
  WsbridgeInstance server(
      "[server]\nshutdown_timeout = \"3s\"\n[[listeners]]\nport = ${PORT}\n"
      "[[routes]]\npath = \"/echo\"\nadapter = \"echo\"\n");
  std::vector<WsClient> clients;
  for (int i = 0; i < 5; ++i) clients.push_back(WsClient::connect(server.client("/echo")));
  clients[0].send_text("queued before shutdown");
  EXPECT_EQ(clients[0].read_message().data, "queued before shutdown");
  const auto start = std::chrono::steady_clock::now();
  server.process->signal(SIGTERM);
  for (auto& ws : clients) EXPECT_EQ(ws.wait_close(5s), 1012);
  EXPECT_EQ(server.process->wait_exit(5s), 0) << server.process->output();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_NE(server.process->output().find("closing 5 connection(s) with 1012"), std::string::npos);
}

TEST(ProcessTest, SigtermExitsWithinTheTimeoutWhenAPeerNeverAnswersTheClose) {
  WsbridgeInstance server(
      "[server]\nshutdown_timeout = \"1s\"\n[[listeners]]\nport = ${PORT}\n"
      "[[routes]]\npath = \"/echo\"\nadapter = \"echo\"\n");
  WsClient silent = WsClient::connect(server.client("/echo"));  // never reads nor answers
  const auto start = std::chrono::steady_clock::now();
  server.process->signal(SIGINT);
  EXPECT_EQ(server.process->wait_exit(10s), 0) << server.process->output();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
}

// Near the open-file limit wsbridge refuses new TCP connections itself, so accept() never fails
// with EMFILE: lws 4.1.6 would spin on its listening socket (a core at 100%, "accept: errno 24"
// many times a second) while the clients wait. When connections close, service resumes.
TEST(ProcessTest, OpenFileLimitRefusesConnectionsInsteadOfSpinning) {
  const uint16_t port = free_tcp_port();
  const std::string config = write_temp_file(
      "fdlimit.toml", "[[listeners]]\naddress = \"127.0.0.1\"\nport = " + std::to_string(port) +
                          "\n[[routes]]\npath = \"/echo\"\nadapter = \"echo\"\n");
  // prlimit lowers the hard limit too, so wsbridge cannot raise its soft limit past it.
  ChildProcess server =
      ChildProcess::spawn({"prlimit", "--nofile=128:128", WSBRIDGE_BINARY, "--config", config});
  ASSERT_TRUE(wait_port_open("127.0.0.1", port, 10s)) << server.output();
  std::vector<TcpConn> flood;
  for (int i = 0; i < 160; ++i) {
    try {
      flood.push_back(TcpConn::connect("127.0.0.1", port, 1s));
    } catch (const std::exception&) {
    }
  }
  std::this_thread::sleep_for(300ms);
  const long before = cpu_ticks(server.pid());
  std::this_thread::sleep_for(1s);
  const long used = cpu_ticks(server.pid()) - before;
  // Spinning is a whole core: ~100 ticks in that second. Idle is ~0; allow slow machines plenty.
  EXPECT_LT(used, 40) << "wsbridge kept a core busy at the open-file limit";
  EXPECT_EQ(server.output().find("errno 24"), std::string::npos) << server.output();
  EXPECT_NE(server.output().find("near the open-file limit"), std::string::npos) << server.output();
  flood.clear();
  std::this_thread::sleep_for(300ms);
  ClientOptions opts;
  opts.port = port;
  opts.path = "/echo";
  WsClient ws = WsClient::connect(opts);
  ws.send_text("back");
  EXPECT_EQ(ws.read_message().data, "back");
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_exit(10s), 0);
}

}  // namespace
}  // namespace wsbridge::testing
