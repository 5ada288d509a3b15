// The http adapter's rpc mode (plugins/http/rpc.cpp): request frames checked against the
// route's methods and path prefixes, responses as frames.
#include <gtest/gtest.h>

#include <map>

#include "rpc.hpp"

namespace wsbridge {
namespace {

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
      {R"({"type":"request","id":1e2,"method":"GET","path":"/orders"})", "bad_request"},
      {R"({"type":"request","id":99999999999999999999999,"method":"GET","path":"/orders"})",
       "bad_request"},
      {R"({"type":"request","id":1,"method":"POST","path":"/orders","body":"x","body_encoding":5})",
       "bad_request"},
      {R"({"type":"request","id":1,"method":"GET","path":"/orders","headers":{"X":"a\u000bb"}})",
       "bad_request"},
      {R"({"type":"request","id":1,"method":"GET","path":"/orders","headers":{"X":"a\u007fb"}})",
       "bad_request"},
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

TEST(RpcTest, AtMostAHundredHeadersPerRequest) {
  // 75,000 names in one frame held a service thread for seconds (each name was compared with
  // every one before it); a legacy backend would refuse them anyway.
  auto frame_with = [](int headers) {
    nlohmann::json frame = {{"type", "request"}, {"id", 1}, {"method", "GET"}, {"path", "/orders"}};
    for (int i = 0; i < headers; ++i) frame["headers"]["X-H" + std::to_string(i)] = "v";
    return Frame::text(frame.dump());
  };
  auto hundred = http::parse_rpc_request(frame_with(100), policy());
  ASSERT_TRUE(std::holds_alternative<http::RpcCall>(hundred));
  EXPECT_EQ(std::get<http::RpcCall>(hundred).request.headers.size(), 100u);
  auto more = http::parse_rpc_request(frame_with(101), policy());
  ASSERT_TRUE(std::holds_alternative<http::RpcRefusal>(more));
  EXPECT_EQ(std::get<http::RpcRefusal>(more).code, "bad_request");
  EXPECT_EQ(std::get<http::RpcRefusal>(more).message, "at most 100 headers per request");
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

// JSON nested half a million levels deep overflowed the stack when the request's body was
// dumped (a crash of the whole process from one frame); a backend's too-deep JSON answer is
// passed on as text rather than embedded.
TEST(RpcTest, JsonNestedTooDeepIsRefusedOrPassedAsText) {
  const std::string deep = std::string(500'000, '[') + std::string(500'000, ']');
  const auto parsed = http::parse_rpc_request(
      Frame::text(R"({"type":"request","id":1,"method":"POST","path":"/x","body":)" + deep + "}"),
      policy());
  ASSERT_TRUE(std::holds_alternative<http::RpcRefusal>(parsed));
  EXPECT_EQ(std::get<http::RpcRefusal>(parsed).message, "the JSON nests deeper than 128 levels");

  HttpResponse r;
  r.status = 200;
  r.headers = {{"Content-Type", "application/json"}};
  r.body = deep;
  const auto j = nlohmann::json::parse(http::response_frame(7, r).payload());
  EXPECT_EQ(j["body"], deep);
}

}  // namespace
}  // namespace wsbridge
