// A browser's request head as the reverse proxy reads it
// (proxy/src/reverse_proxy/request_head.cpp): the request line, field lines, and the framing rules
// that keep requests from being smuggled.
#include "reverse_proxy/request_head.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wsbridge::reverse_proxy {
namespace {

RequestHead parsed(std::string_view head) {
  auto result = parse_request_head(head);
  if (const auto* error = std::get_if<HeadError>(&result)) {
    ADD_FAILURE() << "refused with " << error->status << " (" << error->reason << "): " << head;
    return {};
  }
  return std::get<RequestHead>(std::move(result));
}

// The refusal's status, 0 when the head was accepted.
unsigned refusal(std::string_view head) {
  const auto result = parse_request_head(head);
  const auto* error = std::get_if<HeadError>(&result);
  if (error != nullptr) {
    EXPECT_FALSE(error->reason.empty()) << head;
  }
  return error == nullptr ? 0 : error->status;
}

// A head with these field lines (each without its CRLF) after `request_line`.
std::string head_with(std::vector<std::string> fields,
                      std::string request_line = "POST /upload HTTP/1.1") {
  std::string head = request_line + "\r\n";
  for (const auto& f : fields) head += f + "\r\n";
  return head + "\r\n";
}

TEST(RequestHeadTest, ReadsTheRequestLineAndFieldsAsSent) {
  const RequestHead r = parsed(
      "GET /app/page?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nX-Custom:   padded\t \r\n"
      "accept: */*\r\nX-Empty:\r\nX-Tab:\ta\tb\r\nX-Utf8: caf\xc3\xa9\r\n\r\n");
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/app/page?x=1&y=%20");
  EXPECT_EQ(r.path(), "/app/page");
  EXPECT_EQ(r.minor_version, 1u);
  ASSERT_EQ(r.headers.size(), 6u);
  EXPECT_EQ(r.headers[0].name, "Host");
  EXPECT_EQ(r.headers[1].name, "X-Custom");
  EXPECT_EQ(r.headers[1].value, "padded");  // OWS trimmed both sides
  EXPECT_EQ(r.headers[2].name, "accept");   // names as sent
  EXPECT_EQ(r.headers[3].value, "");
  EXPECT_EQ(r.headers[4].value, "a\tb");  // HTAB inside a value is fine
  EXPECT_EQ(r.headers[5].value, "caf\xc3\xa9");
  EXPECT_EQ(r.body, BodyFraming::kNone);
  EXPECT_TRUE(r.keep_alive);
  EXPECT_FALSE(r.websocket_upgrade);
  EXPECT_FALSE(r.expect_continue);
  EXPECT_EQ(parsed("GET / HTTP/1.1\r\nHost: a\r\n\r\n").path(), "/");
  EXPECT_EQ(parsed("GET /?q HTTP/1.1\r\nHost: a\r\n\r\n").path(), "/");
  EXPECT_EQ(parsed("OPTIONS /x HTTP/1.0\r\n\r\n").minor_version, 0u);
  EXPECT_EQ(parsed("M-SEARCH /x HTTP/1.1\r\nHost: a\r\n\r\n").method, "M-SEARCH");
}

TEST(RequestHeadTest, TellsALineEndingInLfAlone) {
  EXPECT_FALSE(has_bare_line_feed(""));
  EXPECT_FALSE(has_bare_line_feed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"));
  EXPECT_FALSE(has_bare_line_feed("HTTP/1.1 200 OK\r"));  // (its LF may still come)
  EXPECT_TRUE(has_bare_line_feed("HTTP/1.1 200 OK\nContent-Length: 2\n\nok"));
  EXPECT_TRUE(has_bare_line_feed("HTTP/1.1 200 OK\r\nA: b\n"));
  EXPECT_TRUE(has_bare_line_feed("\n"));
}

TEST(RequestHeadTest, FindsTheEndOfTheHeadAtTheFirstBlankLine) {
  const std::string head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(find_head_end(head), head.size());
  EXPECT_EQ(find_head_end(head + "GET /next HTTP/1.1\r\n\r\n"), head.size());
  EXPECT_EQ(find_head_end(head + "body\r\n\r\n"), head.size());
  for (std::size_t n = 0; n < head.size(); ++n) {
    EXPECT_EQ(find_head_end(std::string_view(head).substr(0, n)), std::string_view::npos) << n;
  }
  // Only CRLF line ends count.
  EXPECT_EQ(find_head_end("GET / HTTP/1.1\nHost: a\n\n"), std::string_view::npos);
  EXPECT_EQ(find_head_end("GET / HTTP/1.1\r\nHost: a\n\r\n"), std::string_view::npos);
  EXPECT_EQ(find_head_end(""), std::string_view::npos);
}

TEST(RequestHeadTest, RefusesMalformedRequestLines) {
  const std::vector<std::pair<std::string, unsigned>> cases = {
      {"GET  / HTTP/1.1", 400},
      {"GET /a b HTTP/1.1", 400},
      {"GET / HTTP/1.1 ", 400},
      {" GET / HTTP/1.1", 400},
      {"GET\t/ HTTP/1.1", 400},
      {"G(T / HTTP/1.1", 400},
      {"GET http://a/ HTTP/1.1", 400},
      {"GET * HTTP/1.1", 400},
      {"GET a/b HTTP/1.1", 400},
      {"GET /a#frag HTTP/1.1", 400},
      {"GET /a\x01 HTTP/1.1", 400},
      {"GET /a\x7f HTTP/1.1", 400},
      {"GET /\r HTTP/1.1", 400},
      {"GET / HTTP/1.1\r", 400},
      {"GET / http/1.1", 400},
      {"GET / HTTP/1.10", 400},
      {"GET / HTTP/1", 400},
      {"GET / HTTP/1.x", 400},
      {"GET / HTTP/2.0", 505},
      {"GET / HTTP/1.2", 505},
      {"GET / HTTP/0.9", 505},
      {"GET /", 400},
      {"GET", 400},
      {"CONNECT /x HTTP/1.1", 501},
      {"CONNECT example.com:443 HTTP/1.1", 501},
  };
  for (const auto& [line, status] : cases) {
    EXPECT_EQ(refusal(head_with({"Host: a"}, line)), status) << line;
  }
  // RFC 9112 2.2 lets a server skip empty lines before the request line; this one refuses them.
  EXPECT_EQ(refusal("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400u);
  EXPECT_EQ(refusal("\r\n\r\n"), 400u);
  EXPECT_EQ(refusal("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400u);  // a bare LF ends no line
  EXPECT_EQ(refusal(""), 400u);
}

TEST(RequestHeadTest, LongTargetsGet414AndLongHeads431) {
  const std::string at_limit = "/" + std::string(8191, 'a');
  EXPECT_EQ(refusal(head_with({"Host: a"}, "GET " + at_limit + " HTTP/1.1")), 0u);
  EXPECT_EQ(refusal(head_with({"Host: a"}, "GET " + at_limit + "a HTTP/1.1")), 414u);
  // The whole head (request line to blank line) may be kMaxHeadBytes long, not more.
  std::string head = head_with({"Host: a", "X-Pad: "}, "GET / HTTP/1.1");
  const std::string pad(kMaxHeadBytes - head.size(), 'p');
  head = head_with({"Host: a", "X-Pad: " + pad}, "GET / HTTP/1.1");
  ASSERT_EQ(head.size(), kMaxHeadBytes);
  EXPECT_EQ(refusal(head), 0u);
  EXPECT_EQ(refusal(head_with({"Host: a", "X-Pad: p" + pad}, "GET / HTTP/1.1")), 431u);
}

TEST(RequestHeadTest, RefusesMalformedFieldLines) {
  const std::vector<std::string> bad = {
      " X-Folded: a",                  // obs-fold
      "\tX-Folded: a",                 // obs-fold with a tab
      "Transfer-Encoding : chunked",   // whitespace before the colon
      "Content-Length\t: 5",           //
      "X-No-Colon",                    //
      ": no name",                     //
      "X(bad): a",                     // a name that is not a token
      "X-Bare-LF: a\nX-Smuggled: b",   // bare LF
      "X-Bare-CR: a\rb",               // bare CR
      std::string("X-Nul: a\0b", 10),  // NUL
      "X-Ctl: a\x01",                  // other control characters
      "X-Del: a\x7f",                  //
      "X-Esc: \x1b[31m",               //
  };
  for (const auto& field : bad) {
    EXPECT_EQ(refusal(head_with({"Host: a", field}, "GET / HTTP/1.1")), 400u) << field;
  }
  // The reason says what was wrong (it goes to the log).
  const auto folded = parse_request_head(head_with({"Host: a", " X-Folded: a"}));
  ASSERT_TRUE(std::holds_alternative<HeadError>(folded));
  EXPECT_EQ(std::get<HeadError>(folded).reason, "obsolete line folding");
  const auto spaced = parse_request_head(head_with({"Host: a", "Transfer-Encoding : chunked"}));
  ASSERT_TRUE(std::holds_alternative<HeadError>(spaced));
  EXPECT_EQ(std::get<HeadError>(spaced).reason, "whitespace before a field's colon");
  // A folded continuation of the previous line, the classic form.
  EXPECT_EQ(refusal("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n"), 400u);
  // Bytes after the blank line are not part of a head (find_head_end delimits it).
  EXPECT_EQ(refusal("GET / HTTP/1.1\r\nHost: a\r\n\r\nX"), 400u);
  EXPECT_EQ(refusal("GET / HTTP/1.1\r\nHost: a\r\n"), 400u);  // no blank line
}

TEST(RequestHeadTest, ChunkedIsTheOnlyTransferCoding) {
  RequestHead r = parsed(head_with({"Host: a", "Transfer-Encoding: chunked"}));
  EXPECT_EQ(r.body, BodyFraming::kChunked);
  EXPECT_EQ(parsed(head_with({"Host: a", "transfer-encoding: CHUNKED"})).body,
            BodyFraming::kChunked);
  EXPECT_EQ(parsed(head_with({"Host: a", "Transfer-Encoding:\tchunked\t"})).body,
            BodyFraming::kChunked);
  EXPECT_EQ(parsed(head_with({"Host: a", "Transfer-Encoding: chunked,"})).body,
            BodyFraming::kChunked);  // an empty list element counts for nothing (RFC 9110 5.6.1)
  for (const std::string te : {"gzip", "gzip, chunked", "chunked, gzip", "chunked, chunked",
                               "xchunked", "chunkedx", "chunked;q=1", "identity", "\"chunked\""}) {
    EXPECT_EQ(refusal(head_with({"Host: a", "Transfer-Encoding: " + te})), 501u) << te;
  }
  // Split over two fields: the codings are the list of both.
  EXPECT_EQ(
      refusal(head_with({"Host: a", "Transfer-Encoding: gzip", "Transfer-Encoding: chunked"})),
      501u);
  EXPECT_EQ(
      refusal(head_with({"Host: a", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"})),
      501u);
  EXPECT_EQ(refusal(head_with({"Host: a", "Transfer-Encoding:"})), 400u);
  EXPECT_EQ(refusal(head_with({"Host: a", "Transfer-Encoding: , "})), 400u);
  // HTTP/1.0 has no transfer codings: a 1.0 server would read the body as Content-Length says.
  EXPECT_EQ(refusal(head_with({"Transfer-Encoding: chunked"}, "POST / HTTP/1.0")), 400u);
  EXPECT_EQ(refusal(head_with({"Transfer-Encoding: gzip"}, "POST / HTTP/1.0")), 400u);
}

TEST(RequestHeadTest, ContentLengthIsOneDecimalNumber) {
  RequestHead r = parsed(head_with({"Host: a", "Content-Length: 42"}));
  EXPECT_EQ(r.body, BodyFraming::kLength);
  EXPECT_EQ(r.content_length, 42u);
  // 0 is a length too: the backend gets "Content-Length: 0".
  r = parsed(head_with({"Host: a", "Content-Length: 0"}));
  EXPECT_EQ(r.body, BodyFraming::kLength);
  EXPECT_EQ(r.content_length, 0u);
  r = parsed(head_with({"Host: a", "Content-Length: 18446744073709551615"}));
  EXPECT_EQ(r.content_length, 18446744073709551615ull);
  EXPECT_EQ(parsed(head_with({"Host: a", "Content-Length: 007"})).content_length, 7u);
  // Repeated identical values are one (RFC 9110 8.6).
  EXPECT_EQ(parsed(head_with({"Host: a", "Content-Length: 5", "content-length: 5"})).content_length,
            5u);
  EXPECT_EQ(parsed(head_with({"Host: a", "Content-Length: 5, 5 ,5"})).content_length, 5u);
  for (const std::string cl : {"", "+5", "-5", "5x", "0x10", "5 5", "5,", ",5", "5,,5", "1e3",
                               "5.0", "18446744073709551616", "99999999999999999999999"}) {
    EXPECT_EQ(refusal(head_with({"Host: a", "Content-Length: " + cl})), 400u) << cl;
  }
  // Differing values: two readers would end the body in different places.
  EXPECT_EQ(refusal(head_with({"Host: a", "Content-Length: 5", "Content-Length: 6"})), 400u);
  EXPECT_EQ(refusal(head_with({"Host: a", "Content-Length: 5, 6"})), 400u);
  EXPECT_EQ(refusal(head_with({"Host: a", "Content-Length: 5", "Content-Length: 5, 50"})), 400u);
  // Both framings: refused whatever their order (RFC 9112 6.1 allows it; it is a smuggling tell).
  EXPECT_EQ(refusal(head_with({"Host: a", "Content-Length: 5", "Transfer-Encoding: chunked"})),
            400u);
  EXPECT_EQ(refusal(head_with({"Host: a", "Transfer-Encoding: chunked", "Content-Length: 0"})),
            400u);
  EXPECT_EQ(refusal(head_with({"Host: a", "Transfer-Encoding: gzip", "Content-Length: 3"})), 400u);
}

TEST(RequestHeadTest, HostIsRequiredOnceIn11) {
  EXPECT_EQ(refusal(head_with({}, "GET / HTTP/1.1")), 400u);
  EXPECT_EQ(refusal(head_with({"Host: a", "Host: a"}, "GET / HTTP/1.1")), 400u);
  EXPECT_EQ(refusal(head_with({"Host: a", "host: b"}, "GET / HTTP/1.1")), 400u);
  EXPECT_EQ(refusal(head_with({"Host: a", "Host: b"}, "GET / HTTP/1.0")), 400u);
  EXPECT_EQ(refusal(head_with({}, "GET / HTTP/1.0")), 0u);
  for (const std::string host :
       {"a b", "a/b", "a\\b", "a@b", "a\"b", "<a>",
        // Valid URI hosts, but no DNS name: forwarded, "a,b" reads as a list.
        "a,b", "a;b=c", "a%2Cb", "a!b", "a'b", "a(b)", "a*b", "a=b", "a$b", "a&b", "a+b",
        // Ports and literals that are none.
        "a:b", "a:1:2", "a:123456", "[::1", "[]", "[::1]x", "[::1]:x", "[x]", "[::1]:8080:1",
        // Names no DNS has: empty labels, a label's leading or trailing '-', '~', a long label.
        "a..b", ".a.b", "-a.b", "a-.b", "a~b", "a.b..",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.test"}) {
    EXPECT_EQ(refusal(head_with({"Host: " + host}, "GET / HTTP/1.1")), 400u) << host;
  }
  for (const std::string host :
       {"example.com", "example.com:8080", "[::1]:8080", "127.0.0.1", "xn--bcher-kva.ch", "",
        "[::1]", "[2001:db8::1]:443", "under_score.local", "host:", "a.b.c:65535", "example.com.",
        "example.com.:443", "xn--80ak6aa92e.com"}) {
    EXPECT_EQ(refusal(head_with({"Host: " + host}, "GET / HTTP/1.1")), 0u) << host;
  }
}

TEST(RequestHeadTest, KeepAliveFollowsTheVersionAndConnection) {
  struct Case {
    const char* line;
    std::vector<std::string> fields;
    bool keep_alive;
  };
  const std::vector<Case> cases = {
      {"GET / HTTP/1.1", {"Host: a"}, true},
      {"GET / HTTP/1.1", {"Host: a", "Connection: close"}, false},
      {"GET / HTTP/1.1", {"Host: a", "Connection: CLOSE"}, false},
      {"GET / HTTP/1.1", {"Host: a", "Connection: x-foo, close"}, false},
      {"GET / HTTP/1.1", {"Host: a", "Connection: x-foo", "Connection: close"}, false},
      {"GET / HTTP/1.1", {"Host: a", "Connection: closed"}, true},
      {"GET / HTTP/1.1", {"Host: a", "Connection: keep-alive"}, true},
      {"GET / HTTP/1.0", {}, false},
      {"GET / HTTP/1.0", {"Connection: keep-alive"}, true},
      {"GET / HTTP/1.0", {"Connection: Keep-Alive"}, true},
      {"GET / HTTP/1.0", {"Connection: keep-alive, close"}, false},
      {"GET / HTTP/1.0", {"Keep-Alive: timeout=5"}, false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(parsed(head_with(c.fields, c.line)).keep_alive, c.keep_alive)
        << c.line << " " << (c.fields.empty() ? "" : c.fields.back());
  }
}

TEST(RequestHeadTest, RecognizesWebSocketUpgradesAndExpectContinue) {
  const std::vector<std::string> upgrade = {"Host: a", "Upgrade: websocket", "Connection: Upgrade",
                                            "Sec-WebSocket-Version: 13",
                                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="};
  EXPECT_TRUE(parsed(head_with(upgrade, "GET /ws HTTP/1.1")).websocket_upgrade);
  EXPECT_TRUE(parsed(head_with({"Host: a", "Upgrade: WebSocket", "Connection: keep-alive, upgrade"},
                               "GET /ws HTTP/1.1"))
                  .websocket_upgrade);
  EXPECT_TRUE(parsed(head_with({"Host: a", "Upgrade: h2c, websocket", "Connection: Upgrade"},
                               "GET /ws HTTP/1.1"))
                  .websocket_upgrade);
  EXPECT_FALSE(parsed(head_with(upgrade, "POST /ws HTTP/1.1")).websocket_upgrade);
  EXPECT_FALSE(parsed(head_with(upgrade, "get /ws HTTP/1.1")).websocket_upgrade);  // methods: case
  EXPECT_FALSE(parsed(head_with({"Upgrade: websocket", "Connection: Upgrade"}, "GET /ws HTTP/1.0"))
                   .websocket_upgrade);
  EXPECT_FALSE(
      parsed(head_with({"Host: a", "Upgrade: websocket"}, "GET /ws HTTP/1.1")).websocket_upgrade);
  EXPECT_FALSE(
      parsed(head_with({"Host: a", "Connection: Upgrade"}, "GET /ws HTTP/1.1")).websocket_upgrade);
  EXPECT_FALSE(
      parsed(head_with({"Host: a", "Upgrade: h2c", "Connection: Upgrade"}, "GET /ws HTTP/1.1"))
          .websocket_upgrade);
  EXPECT_FALSE(parsed(head_with({"Host: a", "Upgrade: websockets", "Connection: Upgrade"},
                                "GET /ws HTTP/1.1"))
                   .websocket_upgrade);

  EXPECT_TRUE(
      parsed(head_with({"Host: a", "Expect: 100-continue", "Content-Length: 3"})).expect_continue);
  EXPECT_TRUE(parsed(head_with({"Host: a", "expect: 100-Continue"})).expect_continue);
  EXPECT_FALSE(parsed(head_with({"Host: a", "Expect: 100-continue-x"})).expect_continue);
  EXPECT_FALSE(parsed(head_with({"Host: a", "X-Expect: 100-continue"})).expect_continue);
}

}  // namespace
}  // namespace wsbridge::reverse_proxy
