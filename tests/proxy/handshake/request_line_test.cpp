// parse_request_line (proxy/src/handshake/request_line.cpp): the one reading of a request line for
// the heads lws parses (the recv guard) and the ones the reverse proxy relays. The grammar's
// cases shared with the reverse proxy are in reverse_proxy/request_head_test.cpp; these are the
// rules the guard added: targets lws mishandles, and the methods it serves.
#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

#include "handshake/request_line.hpp"

namespace wsbridge {
namespace {

constexpr RequestLineRules kGuard{.known_methods_only = true, .max_target_bytes = 1 << 20};
constexpr RequestLineRules kProxy{};

unsigned status_of(std::string_view line, const RequestLineRules& rules = kGuard) {
  const auto parsed = parse_request_line(line, rules);
  const auto* error = std::get_if<RequestLineError>(&parsed);
  return error == nullptr ? 0u : error->status;
}

TEST(RequestLineTest, ReadsAWellFormedLine) {
  const auto parsed = parse_request_line("POST /_wsbridge/send/mqtt?s=a%2Fb HTTP/1.0", kGuard);
  ASSERT_TRUE(std::holds_alternative<RequestLine>(parsed));
  const RequestLine& line = std::get<RequestLine>(parsed);
  EXPECT_EQ(line.method, "POST");
  EXPECT_EQ(line.target, "/_wsbridge/send/mqtt?s=a%2Fb");
  EXPECT_EQ(line.minor_version, 0u);
  EXPECT_EQ(std::get<RequestLine>(parse_request_line("GET / HTTP/1.1", kGuard)).minor_version, 1u);
}

// lws 4.1.6 closed without an answer on "%00" and answered an HTML 403 to a '%' without two hex
// digits.
TEST(RequestLineTest, RefusesTargetsWithBrokenOrNulPercentEncodings) {
  for (const char* line : {"GET /a?x=%00 HTTP/1.1", "GET /a%00b HTTP/1.1", "GET /%zz HTTP/1.1",
                           "GET /a?x=% HTTP/1.1", "GET /a?x=%4 HTTP/1.1", "GET /%g0 HTTP/1.1"}) {
    EXPECT_EQ(status_of(line), 400u) << line;
    EXPECT_EQ(status_of(line, kProxy), 400u) << line;
  }
  // lws decodes the target before it looks for the line's end: the rest of it became a header.
  for (const char* line : {"GET /a?x=%0a HTTP/1.1", "GET /a%0D HTTP/1.1",
                           "GET /a%0AContent-Length:5 HTTP/1.1", "GET /%0d%0A HTTP/1.1"}) {
    EXPECT_EQ(std::get<RequestLineError>(parse_request_line(line, kGuard)).reason,
              "an encoded CR or LF (%0D, %0A) in the request target")
        << line;
  }
  const auto parsed = parse_request_line("GET /x%00 HTTP/1.1", kGuard);
  EXPECT_EQ(std::get<RequestLineError>(parsed).reason,
            "an encoded NUL (%00) in the request target");
  for (const char* line : {"GET /a%20b%2F%2f%ff%0B HTTP/1.1", "GET /%01%09 HTTP/1.1",
                           "GET /é HTTP/1.1", "GET /a%25 HTTP/1.1"}) {
    EXPECT_EQ(status_of(line), 0u) << line;
  }
}

// lws answers 403 to a method it does not parse, and turns a CONNECT raw without an answer.
TEST(RequestLineTest, MethodsLwsDoesNotServeGet501) {
  for (const char* method : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
    EXPECT_EQ(status_of(std::string(method) + " / HTTP/1.1"), 0u) << method;
  }
  for (const char* line : {"TRACE / HTTP/1.1", "get / HTTP/1.1", "PROPFIND / HTTP/1.1",
                           "CONNECT example.com:443 HTTP/1.1", "CONNECT / HTTP/1.1"}) {
    EXPECT_EQ(status_of(line), 501u) << line;
  }
  // The reverse proxy relays any method (its backend decides), never CONNECT.
  EXPECT_EQ(status_of("PROPFIND / HTTP/1.1", kProxy), 0u);
  EXPECT_EQ(status_of("CONNECT / HTTP/1.1", kProxy), 501u);
}

TEST(RequestLineTest, TargetsAreAsLongAsTheRulesSay) {
  const std::string long_target = "GET /?t=" + std::string(9000, 'k') + " HTTP/1.1";
  EXPECT_EQ(status_of(long_target, kProxy), 414u);
  EXPECT_EQ(status_of(long_target, kGuard), 0u);
}

TEST(RequestLineTest, SaysWhyALineIsRefused) {
  const std::vector<std::pair<std::string, std::string_view>> cases = {
      {"GET /healthz", "a request line without an HTTP version (HTTP/0.9 is not served)"},
      {"GET http://h/ HTTP/1.1", "a request target that is not a path (origin-form)"},
      {"OPTIONS * HTTP/1.1", "a request target that is not a path (origin-form)"},
      {"GET / HTTP/2.0", "only HTTP/1.0 and 1.1 are served"},
      {"GET", "a malformed request line"},
  };
  for (const auto& [line, reason] : cases) {
    const auto parsed = parse_request_line(line, kGuard);
    ASSERT_TRUE(std::holds_alternative<RequestLineError>(parsed)) << line;
    EXPECT_EQ(std::get<RequestLineError>(parsed).reason, reason) << line;
  }
  EXPECT_EQ(request_refusal_phrase(505), "HTTP Version Not Supported");
  EXPECT_EQ(request_refusal_phrase(400), "Bad Request");
}

}  // namespace
}  // namespace wsbridge
