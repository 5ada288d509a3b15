// Regression tests (#13 points 6, 9, 10 and the symlink part of 8), against a real wsbridge over
// raw sockets: each fails without the fix it names.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "http/static_files.hpp"
#include "integration/wsbridge_instance.hpp"
#include "support/jwt_sign.hpp"
#include "wsbridge/log.hpp"

namespace wsbridge::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const std::string kSecret = "an-hmac-secret-of-at-least-32-bytes!";

std::string config(const std::string& extra = "") {
  return R"(
[jwt.main]
secret_env = "WSBRIDGE_TEST_JWT_SECRET"
issuer = "tests"
leeway = "0s"

[[listeners]]
port = ${PORT}
permessage_deflate = false

[[routes]]
path = "/echo"
adapter = "echo"

[[routes]]
path = "/private"
adapter = "echo"
subprotocols = ["chat.v1"]
[routes.auth]
jwt = "main"
)" + extra;
}

std::string token(const std::string& sub, std::size_t pad = 0) {
  json claims = {{"sub", sub}, {"iss", "tests"}, {"exp", unix_now() + 300}};
  if (pad > 0) claims["pad"] = std::string(pad, 'p');
  return sign_hs256(claims, kSecret);
}

// A valid token of `size` bytes or a little under (base64 moves in steps of 4 characters).
std::string token_of_size(std::size_t size) {
  std::string t;
  for (std::size_t pad = size * 3 / 4;; --pad) {
    t = token("alice", pad);
    if (t.size() <= size) return t;
  }
}

class RecvGuardTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("WSBRIDGE_TEST_JWT_SECRET", kSecret.c_str(), 1);
    server_ = new WsbridgeInstance(config());
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static WsbridgeInstance* server_;
};
WsbridgeInstance* RecvGuardTest::server_ = nullptr;

// ---- 6: the unmasked-frame guard follows the stream from the end of the head ------------------

// A masked frame (mask key 0, so its payload is on the wire as it is) holding "\r\n\r\n" and, after
// it, what reads as the header of a 63-byte masked frame that would swallow the unmasked frame
// behind it: a parser that restarted at the "\r\n\r\n" would see only masked frames.
std::string desync_frames() {
  const MaskKey zero{0, 0, 0, 0};
  const std::string evil = encode_frame(Opcode::kText, "evil", true, std::nullopt);  // 6 bytes
  std::string payload = "\r\n\r\n\x81\xbf";
  payload += std::string(4, '\0');  // the fake frame's mask key
  payload += std::string(63 - evil.size(), 'f');
  return encode_frame(Opcode::kBinary, payload, true, zero) + evil;
}

TEST_F(RecvGuardTest, AHeadEndInsideAMaskedPayloadDoesNotHideAnUnmaskedFrame) {
  TcpConn tcp = TcpConn::connect("127.0.0.1", server_->port);
  tcp.send_all(build_handshake_request(server_->client("/echo")) + desync_frames());
  ASSERT_EQ(tcp.read_http_response().status, 101);
  WsClient ws = WsClient::adopt(std::move(tcp));
  EXPECT_EQ(ws.wait_close(), 1002);
}

TEST_F(RecvGuardTest, AfterTheUpgradeTooTheUnmaskedFrameCloses) {
  WsClient ws = WsClient::connect(server_->client("/echo"));
  ws.tcp().send_all(desync_frames());
  EXPECT_EQ(ws.wait_close(), 1002);
}

TEST_F(RecvGuardTest, KeepAliveRequestsThenAnUpgradeAreFollowed) {
  TcpConn tcp = TcpConn::connect("127.0.0.1", server_->port);
  tcp.send_all(
      "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
      "GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" +
      build_handshake_request(server_->client("/echo")) + desync_frames());
  EXPECT_EQ(tcp.read_http_response().status, 200);
  EXPECT_EQ(tcp.read_http_response().status, 404);
  ASSERT_EQ(tcp.read_http_response().status, 101);
  WsClient ws = WsClient::adopt(std::move(tcp));
  EXPECT_EQ(ws.wait_close(), 1002);
}

TEST_F(RecvGuardTest, MaskedFramesHoldingHeadEndsStillWork) {
  TcpConn tcp = TcpConn::connect("127.0.0.1", server_->port);
  const MaskKey zero{0, 0, 0, 0};
  tcp.send_all(build_handshake_request(server_->client("/echo")) +
               encode_frame(Opcode::kText, "a\r\n\r\nGET / HTTP/1.1\r\n\r\n", true, zero) +
               encode_frame(Opcode::kText, std::string(70000, 'x') + "\r\n\r\n", true, zero));
  ASSERT_EQ(tcp.read_http_response().status, 101);
  WsClient ws = WsClient::adopt(std::move(tcp));
  EXPECT_EQ(ws.read_message().data, "a\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  const std::string big = ws.read_message().data;  // a 64-bit length
  EXPECT_EQ(big.size(), 70004u);
  const std::string want = std::string(70000, 'x') + "\r\n\r\n";
  const auto diff = std::mismatch(big.begin(), big.end(), want.begin(), want.end());
  EXPECT_EQ(diff.first - big.begin(), static_cast<long>(big.size()))
      << ::testing::PrintToString(big.substr(diff.first - big.begin(), 40)) << " len-tail "
      << ::testing::PrintToString(big.substr(big.size() - 40));
  ws.send_close(1000);
  EXPECT_EQ(ws.wait_close(), 1000);
}

// ---- 9: tokens up to the documented 8 KiB in every source; 431 beyond ------------------------

enum class Source { kHeader, kQuery, kCookie, kSubprotocol };

ClientOptions with_token(const WsbridgeInstance& server, Source source, const std::string& t) {
  ClientOptions o = server.client("/private");
  switch (source) {
    case Source::kHeader:
      o.extra_headers.emplace_back("Authorization", "Bearer " + t);
      break;
    case Source::kQuery:
      o.path += "?access_token=" + t;
      break;
    case Source::kCookie:
      o.extra_headers.emplace_back("Cookie", "theme=dark; access_token=" + t);
      break;
    case Source::kSubprotocol:
      o.extra_headers.emplace_back("Sec-WebSocket-Protocol", "chat.v1, bearer." + t);
      break;
  }
  return o;
}

TEST_F(RecvGuardTest, TokensUpTo8KiBAreAcceptedFromEverySource) {
  for (std::size_t size : {4608u, 8192u}) {
    const std::string t = token_of_size(size);
    ASSERT_GT(t.size(), size - 4);
    for (Source source : {Source::kHeader, Source::kQuery, Source::kCookie, Source::kSubprotocol}) {
      SCOPED_TRACE(::testing::Message() << size << " bytes, source " << static_cast<int>(source));
      WsClient ws = WsClient::connect(with_token(*server_, source, t));
      ws.send_text("hi");
      EXPECT_EQ(ws.read_message().data, "hi");
    }
  }
}

TEST_F(RecvGuardTest, A20KiBTokenGets431FromEverySource) {
  const std::string t = token_of_size(20 * 1024);
  for (Source source : {Source::kHeader, Source::kQuery, Source::kCookie, Source::kSubprotocol}) {
    SCOPED_TRACE(static_cast<int>(source));
    TcpConn tcp = TcpConn::connect("127.0.0.1", server_->port);
    tcp.send_all(build_handshake_request(with_token(*server_, source, t)));
    const HttpResponse r = tcp.read_http_response();
    EXPECT_EQ(r.status, 431);
    EXPECT_NE(r.body.find("over"), std::string::npos);
    EXPECT_TRUE(tcp.wait_closed(5s));
  }
  // The server goes on serving.
  EXPECT_EQ(http_get("127.0.0.1", server_->port, "/healthz").status, 200);
}

// ---- 10: no forged log lines ---------------------------------------------------------------

// A client's name (a certificate CN "dev1 level=error msg=fake") written as a text line's field
// made fields of its own: quoted, it is one value.
TEST(LogEscapeTest, QuotesFieldValuesThatCouldPassForMoreFields) {
  EXPECT_EQ(log_field_value("alice"), "alice");
  EXPECT_EQ(log_field_value("CN.dev-1@x:9/a"), "CN.dev-1@x:9/a");
  EXPECT_EQ(log_field_value("dev1 level=error msg=fake"), "\"dev1 level=error msg=fake\"");
  EXPECT_EQ(log_field_value("a=b"), "\"a=b\"");
  EXPECT_EQ(log_field_value("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
  EXPECT_EQ(log_field_value("line\nbreak"), "\"line\nbreak\"");  // (escaped with the line)
  EXPECT_EQ(log_field_value(""), "\"\"");
}

TEST(LogEscapeTest, EscapesWhatCouldForgeOrHideALine) {
  EXPECT_EQ(escape_log_text("plain text: ok"), "plain text: ok");
  EXPECT_EQ(escape_log_text("bob\n2026-01-01 info forged"), "bob\\n2026-01-01 info forged");
  EXPECT_EQ(escape_log_text("a\rb\tc\x1b[31m\x7f"), "a\\rb\\tc\\x1B[31m\\x7F");
  EXPECT_EQ(escape_log_text("back\\slash"), "back\\\\slash");
  EXPECT_EQ(escape_log_text("caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac");  // kept
  EXPECT_EQ(escape_log_text("bad \xff\xc3("), "bad \\xFF\\xC3(");                      // not UTF-8
  EXPECT_EQ(escape_log_text("\xc0\xaf"), "\\xC0\\xAF");                                // overlong
  EXPECT_EQ(escape_log_text("\xed\xa0\x80"), "\\xED\\xA0\\x80");                       // surrogate
  EXPECT_EQ(escape_log_text("x\xe2\x80\xa8y\xc2\x85z\xe2\x80\xaeq"),  // U+2028, NEL, RLO
            "x\\u{2028}y\\u{0085}z\\u{202E}q");
  EXPECT_EQ(escape_log_text(std::string("nul\0byte", 8)), "nul\\x00byte");
}

// Everything the log sink writes while `fn` runs.
template <typename Fn>
std::string captured_log(Fn fn) {
  int pipe_fds[2];
  EXPECT_EQ(pipe(pipe_fds), 0);
  const int saved = dup(STDERR_FILENO);
  dup2(pipe_fds[1], STDERR_FILENO);
  fn();
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(pipe_fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(pipe_fds[0], buf, sizeof buf)) > 0;) out.append(buf, n);
  close(pipe_fds[0]);
  return out;
}

TEST(LogEscapeTest, EveryEventIsOneLineInBothFormats) {
  const std::string evil = "bob\n2026-01-01T00:00:00.000Z info forged\r\xff\xfe end";
  const std::string text = captured_log([&] {
    set_log_format(LogFormat::kText);
    WSB_LOG(kInfo) << "user=" << evil;
    log_structured(LogLevel::kInfo, "conn 1 open user=" + evil, {{"user", evil}});
  });
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;
  EXPECT_EQ(text.find("\n2026-01-01"), std::string::npos) << text;
  const std::string lines = captured_log([&] {
    set_log_format(LogFormat::kJson);
    WSB_LOG(kInfo) << "user=" << evil;
    log_structured(LogLevel::kInfo, "conn 1 open", {{"user", evil}, {evil, 1}});
    set_log_format(LogFormat::kText);
  });
  std::istringstream in(lines);
  int count = 0;
  for (std::string line; std::getline(in, line); ++count) {
    EXPECT_TRUE(json::accept(line)) << line;
  }
  EXPECT_EQ(count, 2);
}

// (Such a subject is refused outright since: a user name with a control character could not
// reach a backend's X-Wsbridge-User either. Its refusal forges no line.)
TEST_F(RecvGuardTest, ANewlineInATokenSubjectForgesNoLogLine) {
  const std::string forged = "2026-01-01T00:00:00.000Z info conn 999 forged line";
  ClientOptions o = server_->client("/private");
  o.extra_headers.emplace_back("Authorization", "Bearer " + token("bob\n" + forged + "\r\n"));
  try {
    WsClient::connect(o);
    ADD_FAILURE() << "a subject with a line break was accepted";
  } catch (const HandshakeError& e) {
    EXPECT_EQ(e.response().status, 401);
  }
  ASSERT_TRUE(server_->process->wait_for_output("its subject holds control characters", 5s))
      << server_->process->output();
  std::istringstream out(server_->process->output());
  for (std::string line; std::getline(out, line);) {
    EXPECT_FALSE(line.starts_with("2026-01-01")) << line;
  }
}

// ---- 8: static files stay inside static_dir ----------------------------------------------

TEST(StaticFilesTest, InsideComparesWholePathComponents) {
  EXPECT_TRUE(static_files::inside("/srv/www", "/srv/www"));
  EXPECT_TRUE(static_files::inside("/srv/www", "/srv/www/a/b.html"));
  EXPECT_FALSE(static_files::inside("/srv/www", "/srv/www2/a.html"));
  EXPECT_FALSE(static_files::inside("/srv/www", "/srv"));
  EXPECT_FALSE(static_files::inside("/srv/www", ""));
  EXPECT_TRUE(static_files::inside("/", "/etc/passwd"));
}

TEST(StaticFilesTest, SymlinksOutOfStaticDirAre404) {
  namespace fs = std::filesystem;
  const fs::path base = fs::path(temp_dir()) / "static-symlinks";
  const fs::path root = base / "www";
  const fs::path outside = base / "outside";
  fs::create_directories(root / "sub");
  fs::create_directories(outside);
  std::ofstream(root / "index.html") << "the index\n";
  std::ofstream(root / "sub" / "page.html") << "a page\n";
  std::ofstream(outside / "secret.txt") << "top secret\n";
  std::ofstream(outside / "index.html") << "outside index\n";
  fs::create_symlink(outside / "secret.txt", root / "leak.txt");
  fs::create_symlink("../outside", root / "outdir");
  fs::create_symlink("sub/page.html", root / "alias.html");
  fs::create_symlink("sub", root / "subalias");

  WsbridgeInstance server(R"(
[server]
static_dir = ")" + root.string() +
                          R"("

[[listeners]]
port = ${PORT}

[[routes]]
path = "/echo"
adapter = "echo"
)");
  auto get = [&](const std::string& path) { return http_get("127.0.0.1", server.port, path); };
  const HttpResponse leak = get("/leak.txt");
  EXPECT_EQ(leak.status, 404);
  EXPECT_EQ(leak.body.find("secret"), std::string::npos);
  EXPECT_EQ(get("/outdir/secret.txt").status, 404);
  EXPECT_EQ(get("/outdir/").status, 404);  // a directory: lws looks for its index
  EXPECT_EQ(get("/outdir").status, 404);
  const HttpResponse alias = get("/alias.html");
  EXPECT_EQ(alias.status, 200);
  EXPECT_EQ(alias.body, "a page\n");
  EXPECT_EQ(get("/subalias/page.html").status, 200);
  EXPECT_EQ(get("/").body, "the index\n");
  EXPECT_TRUE(server.process->wait_for_output("refused static file", 5s));
}

}  // namespace
}  // namespace wsbridge::testing
