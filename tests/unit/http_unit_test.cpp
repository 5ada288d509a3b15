// Pure parts of the HTTP side: URLs, request serialization, the incremental response parser,
// the rpc frame checks, the admin API and the http route configuration.
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "admin/admin_api.hpp"
#include "config/server_config.hpp"
#include "http/http1.hpp"
#include "http_config.hpp"
#include "rpc.hpp"
#include "wsbridge/adapter_registry.hpp"

namespace wsbridge {
namespace {

using http1::ResponseParser;

TEST(HttpUrlTest, ParsesSchemesHostsPortsAndPaths) {
  std::string error;
  auto u = http1::parse_url("http://127.0.0.1:8000/api/v1", error);
  ASSERT_TRUE(u) << error;
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8000);
  EXPECT_EQ(u->path, "/api/v1");
  EXPECT_EQ(u->host_header(), "127.0.0.1:8000");
  u = http1::parse_url("https://[::1]/", error);
  ASSERT_TRUE(u) << error;
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->host_header(), "[::1]");
  for (const char* bad : {"ftp://x", "http://", "http://h:0", "http://h:70000", "http://u@h/",
                          "http://h/p?q=1", "http://[::1", "http://h/a b"}) {
    EXPECT_FALSE(http1::parse_url(bad, error)) << bad;
  }
}

TEST(HttpRequestTest, SerializesWithHostLengthAndKeepAlive) {
  std::string error;
  auto url = *http1::parse_url("http://backend:8080/base/", error);
  HttpRequest r;
  r.method = "POST";
  r.target = "/orders?id=1";
  r.headers = {{"X-A", "1"}, {"Host", "evil"}, {"Content-Length", "99"}};
  r.body = "hello";
  EXPECT_EQ(http1::serialize_request(r, url),
            "POST /base/orders?id=1 HTTP/1.1\r\nHost: backend:8080\r\nX-A: 1\r\n"
            "Content-Length: 5\r\nConnection: keep-alive\r\n\r\nhello");
  HttpRequest get;
  get.method = "GET";
  EXPECT_EQ(http1::serialize_request(get, url),
            "GET /base/ HTTP/1.1\r\nHost: backend:8080\r\nConnection: keep-alive\r\n\r\n");
}

ResponseParser::State feed_bytewise(ResponseParser& p, std::string_view data) {
  auto state = ResponseParser::State::kIncomplete;
  for (char c : data) state = p.feed(&c, 1);
  return state;
}

TEST(HttpResponseParserTest, ContentLengthChunkedAndCloseDelimited) {
  const std::string fixed =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
  ResponseParser a(1024);
  EXPECT_EQ(a.feed(fixed.data(), fixed.size()), ResponseParser::State::kComplete);
  EXPECT_TRUE(a.keep_alive());
  HttpResponse r = a.take();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(*find_header(r.headers, "content-type"), "text/plain");

  ResponseParser b(1024);
  EXPECT_EQ(feed_bytewise(b,
                          "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\n2\r\nef\r\n0\r\n"
                          "Trailer: x\r\n\r\n"),
            ResponseParser::State::kComplete);
  r = b.take();
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "abcdef");

  ResponseParser c(1024);
  const std::string until_close = "HTTP/1.0 200 OK\r\n\r\nsome bytes";
  EXPECT_EQ(c.feed(until_close.data(), until_close.size()), ResponseParser::State::kIncomplete);
  EXPECT_EQ(c.finish(), ResponseParser::State::kComplete);
  EXPECT_FALSE(c.keep_alive());
  EXPECT_EQ(c.take().body, "some bytes");

  ResponseParser d(1024);
  const std::string no_body = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
  EXPECT_EQ(d.feed(no_body.data(), no_body.size()), ResponseParser::State::kComplete);
  EXPECT_FALSE(d.keep_alive());

  ResponseParser head(1024, true);
  const std::string head_reply = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
  EXPECT_EQ(head.feed(head_reply.data(), head_reply.size()), ResponseParser::State::kComplete);
}

TEST(HttpResponseParserTest, RefusesOversizedTruncatedAndMalformedResponses) {
  ResponseParser big(10);
  const std::string a = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n";
  EXPECT_EQ(big.feed(a.data(), a.size()), ResponseParser::State::kError);
  EXPECT_TRUE(big.too_large());

  ResponseParser chunked_big(10);
  EXPECT_EQ(
      feed_bytewise(chunked_big,
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n"),
      ResponseParser::State::kError);
  EXPECT_TRUE(chunked_big.too_large());

  ResponseParser truncated(100);
  const std::string t = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345";
  EXPECT_EQ(truncated.feed(t.data(), t.size()), ResponseParser::State::kIncomplete);
  EXPECT_EQ(truncated.finish(), ResponseParser::State::kError);
  EXPECT_FALSE(truncated.too_large());

  for (const char* bad :
       {"HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"}) {
    ResponseParser p(100);
    EXPECT_EQ(p.feed(bad, std::strlen(bad)), ResponseParser::State::kError) << bad;
  }
  // Bytes after a complete response: the response stands, the connection is not reused.
  ResponseParser extra(100);
  const std::string ab = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab";
  EXPECT_EQ(extra.feed(ab.data(), ab.size()), ResponseParser::State::kComplete);
  EXPECT_FALSE(extra.keep_alive());
  EXPECT_EQ(extra.take().body, "a");
  ResponseParser none(100);
  EXPECT_EQ(none.finish(), ResponseParser::State::kError);
}

http::RpcPolicy policy() {
  return {{"GET", "POST"}, {"/orders", "/api/"}, {}};
}

TEST(RpcTest, PathsStayWithinTheirPrefixes) {
  std::string why;
  const auto prefixes = policy().paths;
  for (const char* ok : {"/orders", "/orders/42", "/orders?x=1", "/api/a/b", "/orders/a%20b"}) {
    EXPECT_TRUE(http::path_allowed(ok, prefixes, why)) << ok << ": " << why;
  }
  for (const char* bad :
       {"/orders-admin", "/ordersx", "/api", "/orders/../admin", "/orders/%2e%2e/admin",
        "/orders/%2E%2e", "/orders/./x", "orders", "/orders/a b", "/orders\\..\\x", "/orders/%5c..",
        "/orders#f", "/orders/%0d%0aX"}) {
    EXPECT_FALSE(http::path_allowed(bad, prefixes, why)) << bad;
  }
}

TEST(RpcTest, RequestFramesBecomeCheckedRequests) {
  auto parsed = http::parse_rpc_request(
      Frame::text(R"({"type":"request","id":"a","method":"post","path":"/orders/1",)"
                  R"("headers":{"X-Trace":"t"},"body":{"n":1}})"),
      policy());
  ASSERT_TRUE(std::holds_alternative<http::RpcCall>(parsed));
  const auto& call = std::get<http::RpcCall>(parsed);
  EXPECT_EQ(call.id, "a");
  EXPECT_EQ(call.request.method, "POST");
  EXPECT_EQ(call.request.target, "/orders/1");
  EXPECT_EQ(call.request.body, R"({"n":1})");
  EXPECT_EQ(*find_header(call.request.headers, "content-type"), "application/json");
  EXPECT_EQ(*find_header(call.request.headers, "x-trace"), "t");

  parsed = http::parse_rpc_request(
      Frame::text(
          R"({"type":"request","id":2,"method":"POST","path":"/orders","body":"AAE=","body_encoding":"base64"})"),
      policy());
  ASSERT_TRUE(std::holds_alternative<http::RpcCall>(parsed));
  EXPECT_EQ(std::get<http::RpcCall>(parsed).request.body, std::string("\x00\x01", 2));

  const std::map<std::string, std::string> refused = {
      {R"({"type":"request","id":1,"method":"DELETE","path":"/orders"})", "forbidden"},
      {R"({"type":"request","id":1,"method":"GET","path":"/x"})", "forbidden"},
      {R"({"type":"request","id":1,"method":"GET","path":"/orders/.."})", "bad_request"},
      {R"({"type":"request","id":1,"method":"GET","path":"/orders","headers":{"Connection":"close"}})",
       "forbidden"},
      {R"({"type":"request","id":1,"method":"GET","path":"/orders","headers":{"Bad Name":"v"}})",
       "bad_request"},
      {R"({"type":"request","id":1,"method":"GET","path":"/orders","headers":{"X_Wsbridge_User":"a"}})",
       "forbidden"},
      {R"({"type":"request","id":1,"method":"GET","path":"/orders","headers":{"X-Real-IP":"1"}})",
       "forbidden"},
      {R"({"type":"request","id":1,"method":"GET","path":"/orders","headers":{"A":"1","a":"2"}})",
       "bad_request"},
      {R"({"type":"request","id":1,"method":"GET","path":"/orders/..;/x"})", "bad_request"},
      {R"({"type":"request","id":1,"method":"GET","path":"/orders","headers":{"X":1}})",
       "bad_request"},
      {R"({"type":"request","id":{},"method":"GET","path":"/orders"})", "bad_request"},
      {R"({"type":"ping","id":1})", "bad_request"},
      {R"([1,2])", "bad_request"},
  };
  for (const auto& [frame, code] : refused) {
    auto r = http::parse_rpc_request(Frame::text(frame), policy());
    ASSERT_TRUE(std::holds_alternative<http::RpcRefusal>(r)) << frame;
    EXPECT_EQ(std::get<http::RpcRefusal>(r).code, code) << frame;
  }
  EXPECT_TRUE(std::holds_alternative<http::RpcRefusal>(
      http::parse_rpc_request(Frame::binary("{}"), policy())));
}

TEST(RpcTest, ResponsesCarryJsonTextOrBase64Bodies) {
  HttpResponse r;
  r.status = 200;
  r.headers = {{"Content-Type", "application/json"}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}};
  r.body = R"({"ok":true})";
  auto j = nlohmann::json::parse(http::response_frame(7, r).payload());
  EXPECT_EQ(j["body"]["ok"], true);
  EXPECT_EQ(j["headers"]["set-cookie"], "a=1, b=2");
  r.headers = {{"Content-Type", "text/plain"}};
  r.body = "hi";
  EXPECT_EQ(nlohmann::json::parse(http::response_frame(7, r).payload())["body"], "hi");
  r.body = std::string("\xff\x00", 2);
  j = nlohmann::json::parse(http::response_frame(7, r).payload());
  EXPECT_EQ(j["body"], "/wA=");
  EXPECT_EQ(j["body_encoding"], "base64");
  EXPECT_TRUE(http::valid_utf8("h\xc3\xa9llo"));
  EXPECT_FALSE(http::valid_utf8("\xc3"));
  EXPECT_FALSE(http::valid_utf8("\xed\xa0\x80"));  // a surrogate
  EXPECT_FALSE(http::valid_utf8("\xc0\xaf"));      // overlong
}

class FakeDirectory final : public SessionDirectory {
 public:
  std::vector<SessionInfo> list_sessions() const override { return sessions; }
  std::size_t push(const PushTarget& target, const Frame& frame) override {
    pushes.emplace_back(target, frame);
    if (target.kind == PushTarget::Kind::kConnection) return target.connection == 1 ? 1 : 0;
    return 2;
  }
  bool close_session(ConnectionId id, std::uint16_t code, const std::string& reason) override {
    closes.push_back({id, code, reason});
    return id == 1;
  }
  struct Close {
    ConnectionId id;
    std::uint16_t code;
    std::string reason;
  };
  std::vector<SessionInfo> sessions = {{1, "alice", "/r", "127.0.0.1", 1.7e9, 1, 2, 3, 4}};
  std::vector<std::pair<PushTarget, Frame>> pushes;
  std::vector<Close> closes;
};

TEST(AdminApiTest, PushListAndCloseWithErrors) {
  FakeDirectory d;
  auto r = handle_admin_api("POST", "/api/v1/push", R"({"user":"alice","data":{"a":1}})", d);
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(d.pushes.size(), 1u);
  EXPECT_EQ(d.pushes[0].first.kind, PushTarget::Kind::kUser);
  EXPECT_EQ(d.pushes[0].second.payload(), R"({"a":1})");
  EXPECT_EQ(handle_admin_api("POST", "/api/v1/push", R"({"connection":2,"data":"x"})", d).status,
            404);
  EXPECT_EQ(handle_admin_api("POST", "/api/v1/push", "{", d).status, 400);
  EXPECT_EQ(handle_admin_api("POST", "/api/v1/push",
                             R"({"route":"/r","data":"%%%","encoding":"base64"})", d)
                .status,
            400);
  r = handle_admin_api("GET", "/api/v1/connections", "", d);
  EXPECT_EQ(r.status, 200);
  auto list = nlohmann::json::parse(r.body)["connections"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["user"], "alice");
  EXPECT_EQ(list[0]["bytes_out"], 4);
  EXPECT_EQ(
      handle_admin_api("DELETE", "/api/v1/connections/1?code=4000&reason=go+away", "", d).status,
      200);
  ASSERT_EQ(d.closes.size(), 1u);
  EXPECT_EQ(d.closes[0].code, 4000);
  EXPECT_EQ(d.closes[0].reason, "go away");
  EXPECT_EQ(handle_admin_api("DELETE", "/api/v1/connections/1?code=1006", "", d).status, 400);
  EXPECT_EQ(handle_admin_api("DELETE", "/api/v1/connections/5", "", d).status, 404);
  EXPECT_EQ(handle_admin_api("PUT", "/api/v1/connections", "", d).status, 405);
  EXPECT_EQ(handle_admin_api("GET", "/api/v1/nothing", "", d).status, 404);
}

ServerConfig load(const std::string& text) {
  static AdapterRegistry registry = [] {
    AdapterRegistry r;
    register_builtin_adapters(r);
    return r;
  }();
  return parse_config(text, "test.toml", registry);
}

TEST(HttpConfigTest, RouteOptionsAreValidatedWithPositions) {
  const std::string head =
      "[[listeners]]\nport = 1\n[[routes]]\npath = \"/h\"\nadapter = \"http\"\n";
  EXPECT_NO_THROW(load(head + "backend = \"http://127.0.0.1:9/x\"\nmode = \"rpc\"\n"
                              "methods = [\"get\"]\npaths = [\"/a\"]\ntimeout = \"2s\"\n"
                              "headers = { X-Key = \"k\" }\n"));
  struct Bad {
    std::string text;
    std::string message;
  } cases[] = {
      {"backend = \"ftp://x\"\n", "test.toml:6:11"},
      {"", "backend"},
      {"backend = \"http://h/\"\nmode = \"stream\"\n", "'mode'"},
      {"backend = \"http://h/\"\nmethods = [\"GET\"]\n", "rpc routes"},
      {"backend = \"http://h/\"\nmode = \"rpc\"\npaths = [\"/a/../b\"]\n", "'paths'"},
      {"backend = \"http://h/\"\nmode = \"rpc\"\nmethods = [\"CONNECT\"]\n", "CONNECT"},
      {"backend = \"http://h/\"\nheaders = { X-Key = \"a\\r\\nb\" }\n", "CR, LF"},
      {"backend = \"http://h/\"\nca_file = \"/nonexistent.pem\"\n", "does not exist"},
      {"backend = \"http://h/\"\ntimeout = \"0s\"\n", "timeout"},
      {"backend = \"http://h/\"\nbogus = 1\n", "bogus"},
  };
  for (const auto& c : cases) {
    try {
      load(head + c.text);
      ADD_FAILURE() << "accepted: " << c.text;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos)
          << c.text << " -> " << e.what();
    }
  }
}

}  // namespace
}  // namespace wsbridge
