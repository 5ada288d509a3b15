// A backend's response head and where its body ends (proxy/src/reverse_proxy/response_head.cpp).
#include "reverse_proxy/response_head.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wsbridge::reverse_proxy {
namespace {

std::string head_with(const std::string& status_line, const std::vector<std::string>& fields) {
  std::string head = status_line + "\r\n";
  for (const auto& f : fields) head += f + "\r\n";
  return head + "\r\n";
}

ResponseHead parsed(const std::string& head, std::string_view method = "GET") {
  std::string error;
  auto r = parse_response_head(head, method, error);
  if (!r) {
    ADD_FAILURE() << "refused (" << error << "): " << head;
    return {};
  }
  EXPECT_TRUE(error.empty()) << error;
  return *r;
}

bool refused(const std::string& head, std::string_view method = "GET") {
  std::string error;
  const bool refused = !parse_response_head(head, method, error);
  if (refused) {
    EXPECT_FALSE(error.empty()) << head;
  }
  return refused;
}

TEST(ResponseHeadTest, ReadsTheStatusLineAndFields) {
  ResponseHead r =
      parsed(head_with("HTTP/1.1 404 Not  Found", {"Content-Type: text/plain", "Set-Cookie: a=1",
                                                   "set-cookie:  b=2 ", "Content-Length: 9"}));
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(r.reason, "Not  Found");  // as sent
  EXPECT_EQ(r.minor_version, 1u);
  ASSERT_EQ(r.headers.size(), 4u);
  EXPECT_EQ(r.headers[1].value, "a=1");
  EXPECT_EQ(r.headers[2].name, "set-cookie");
  EXPECT_EQ(r.headers[2].value, "b=2");
  EXPECT_EQ(r.body, BodyFraming::kLength);
  EXPECT_EQ(r.content_length, 9u);
  EXPECT_TRUE(r.keep_alive);
  // No reason: with its space, or (as browsers take it) without.
  EXPECT_EQ(parsed(head_with("HTTP/1.1 200 ", {"Content-Length: 0"})).reason, "");
  r = parsed(head_with("HTTP/1.1 200", {"Content-Length: 0"}));
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.reason, "");
  EXPECT_EQ(parsed(head_with("HTTP/1.0 200 OK", {"Content-Length: 1"})).minor_version, 0u);
  EXPECT_EQ(parsed(head_with("HTTP/1.1 599 Custom\tthing \xc3\xa9", {})).reason,
            "Custom\tthing \xc3\xa9");
}

TEST(ResponseHeadTest, RefusesMalformedStatusLines) {
  for (const std::string line :
       {"HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "HTTP/1.1 099 Low", "HTTP/1.1 600 High",
        "HTTP/1.1 2x0 OK", "HTTP/1.1  200 OK", "HTTP/1.1 200\tOK", "http/1.1 200 OK",
        "HTTP/2 200 OK", "HTTP/2.0 200 OK", "HTTP/1.2 200 OK", "HTTP/1.x 200 OK", "ICY 200 OK",
        "HTTP/1.1 200 O\x01K", "HTTP/1.1 200 OK\r", "", " HTTP/1.1 200 OK"}) {
    EXPECT_TRUE(refused(head_with(line, {"Content-Length: 0"}))) << line;
  }
  EXPECT_TRUE(refused("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"));  // no blank line
  EXPECT_TRUE(refused("HTTP/1.1 200 OK"));
}

TEST(ResponseHeadTest, RefusesMalformedFieldLines) {
  for (const std::string field : {" folded: a", "Content-Length : 5", "X-A: a\nX-B: b", "X-A: a\rb",
                                  "no colon", "X-A: \x7f"}) {
    EXPECT_TRUE(refused(head_with("HTTP/1.1 200 OK", {"Content-Length: 0", field}))) << field;
  }
}

TEST(ResponseHeadTest, ResponsesWithoutABody) {
  // A HEAD's response, 1xx (101: the tunnel follows), 204 and 304 end at their head, whatever
  // their framing fields say.
  ResponseHead r = parsed(head_with("HTTP/1.1 200 OK", {"Content-Length: 1234"}), "HEAD");
  EXPECT_EQ(r.body, BodyFraming::kNone);
  EXPECT_EQ(r.content_length, 1234u);  // kept, to be passed on
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(parsed(head_with("HTTP/1.1 200 OK", {"Transfer-Encoding: gzip, chunked"}), "HEAD").body,
            BodyFraming::kNone);
  for (const std::string line : {"HTTP/1.1 100 Continue", "HTTP/1.1 103 Early Hints",
                                 "HTTP/1.1 204 No Content", "HTTP/1.1 304 Not Modified"}) {
    EXPECT_EQ(parsed(head_with(line, {"Transfer-Encoding: chunked"})).body, BodyFraming::kNone)
        << line;
  }
  r = parsed(
      head_with("HTTP/1.1 101 Switching Protocols", {"Upgrade: websocket", "Connection: Upgrade"}));
  EXPECT_EQ(r.status, 101u);
  EXPECT_EQ(r.body, BodyFraming::kNone);
  r = parsed(head_with("HTTP/1.1 304 Not Modified", {"ETag: \"x\"", "Content-Length: 10"}));
  EXPECT_EQ(r.body, BodyFraming::kNone);
  EXPECT_EQ(r.content_length, 10u);
  // Their Content-Length must still be one number: it is passed on.
  EXPECT_TRUE(refused(head_with("HTTP/1.1 200 OK", {"Content-Length: 1, 2"}), "HEAD"));
  EXPECT_TRUE(refused(head_with("HTTP/1.1 304 Not Modified", {"Content-Length: x"})));
}

TEST(ResponseHeadTest, ChunkedLengthOrUntilTheClose) {
  ResponseHead r = parsed(head_with("HTTP/1.1 200 OK", {"Transfer-Encoding: Chunked"}));
  EXPECT_EQ(r.body, BodyFraming::kChunked);
  EXPECT_TRUE(r.keep_alive);
  r = parsed(head_with("HTTP/1.1 200 OK", {"Content-Length: 5", "Content-Length: 5"}));
  EXPECT_EQ(r.body, BodyFraming::kLength);
  EXPECT_EQ(r.content_length, 5u);
  r = parsed(head_with("HTTP/1.1 200 OK", {"Content-Length: 0"}));
  EXPECT_EQ(r.body, BodyFraming::kLength);
  EXPECT_EQ(r.content_length, 0u);
  r = parsed(head_with("HTTP/1.1 200 OK", {"Content-Type: text/html"}));
  EXPECT_EQ(r.body, BodyFraming::kUntilClose);
  EXPECT_FALSE(r.keep_alive);  // the close is the body's end
  r = parsed(head_with("HTTP/1.0 200 OK", {"Connection: keep-alive"}));
  EXPECT_EQ(r.body, BodyFraming::kUntilClose);
  EXPECT_FALSE(r.keep_alive);
  // A POST's response is framed the same way.
  EXPECT_EQ(parsed(head_with("HTTP/1.1 201 Created", {"Content-Length: 2"}), "POST").body,
            BodyFraming::kLength);
}

TEST(ResponseHeadTest, RefusesAmbiguousFraming) {
  EXPECT_TRUE(
      refused(head_with("HTTP/1.1 200 OK", {"Transfer-Encoding: chunked", "Content-Length: 5"})));
  EXPECT_TRUE(
      refused(head_with("HTTP/1.1 200 OK", {"Content-Length: 5", "Transfer-Encoding: chunked"})));
  for (const std::string te : {"gzip", "gzip, chunked", "chunked, chunked", "xchunked", ""}) {
    EXPECT_TRUE(refused(head_with("HTTP/1.1 200 OK", {"Transfer-Encoding: " + te}))) << te;
  }
  EXPECT_TRUE(refused(head_with("HTTP/1.0 200 OK", {"Transfer-Encoding: chunked"})));
  EXPECT_TRUE(refused(head_with("HTTP/1.1 200 OK", {"Content-Length: 5", "Content-Length: 6"})));
  EXPECT_TRUE(refused(head_with("HTTP/1.1 200 OK", {"Content-Length: -1"})));
  EXPECT_TRUE(refused(head_with("HTTP/1.1 200 OK", {"Content-Length: 18446744073709551616"})));
}

TEST(ResponseHeadTest, KeepAliveFollowsTheVersionAndConnection) {
  EXPECT_TRUE(parsed(head_with("HTTP/1.1 200 OK", {"Content-Length: 0"})).keep_alive);
  EXPECT_FALSE(
      parsed(head_with("HTTP/1.1 200 OK", {"Content-Length: 0", "Connection: Close"})).keep_alive);
  EXPECT_FALSE(
      parsed(head_with("HTTP/1.1 200 OK", {"Connection: keep-alive, close", "Content-Length: 0"}))
          .keep_alive);
  EXPECT_FALSE(parsed(head_with("HTTP/1.0 200 OK", {"Content-Length: 0"})).keep_alive);
  EXPECT_TRUE(parsed(head_with("HTTP/1.0 200 OK", {"Content-Length: 0", "Connection: Keep-Alive"}))
                  .keep_alive);
  EXPECT_TRUE(parsed(head_with("HTTP/1.1 204 No Content", {})).keep_alive);
  EXPECT_FALSE(parsed(head_with("HTTP/1.1 204 No Content", {"Connection: close"})).keep_alive);
}

}  // namespace
}  // namespace wsbridge::reverse_proxy
