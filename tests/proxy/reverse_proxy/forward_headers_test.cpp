// What the reverse proxy writes in the heads it relays
// (proxy/src/reverse_proxy/forward_headers.cpp), and which paths a prefix covers
// (ProxyRoute::covers, proxy_route.cpp).
#include "reverse_proxy/forward_headers.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "wsbridge/base64.hpp"
#include "wsbridge/text.hpp"

namespace wsbridge::reverse_proxy {
namespace {

ProxyRoute route_to(const std::string& path, const std::string& backend) {
  ProxyRoute route;
  route.path = path;
  route.backend_url = backend;
  std::string error;
  auto url = http1::parse_url(backend, error);
  EXPECT_TRUE(url) << error;
  route.backend = url.value_or(http1::Url{});
  return route;
}

RequestHead request(const std::string& head) {
  auto parsed = parse_request_head(head);
  if (const auto* error = std::get_if<HeadError>(&parsed)) {
    ADD_FAILURE() << error->reason << ": " << head;
    return {};
  }
  return std::get<RequestHead>(std::move(parsed));
}

ResponseHead response(const std::string& head, std::string_view method = "GET") {
  std::string error;
  auto parsed = parse_response_head(head, method, error);
  EXPECT_TRUE(parsed) << error << ": " << head;
  return parsed.value_or(ResponseHead{});
}

// Every value of the fields named `name` in a head the proxy wrote (which must parse back).
std::vector<std::string> values(const std::string& head, std::string_view name) {
  EXPECT_EQ(find_head_end(head), head.size()) << head;
  HttpHeaders headers;
  if (head.starts_with("HTTP/")) {
    headers = response(head).headers;
  } else {
    headers = request(head).headers;
  }
  std::vector<std::string> out;
  for (const auto& h : headers) {
    if (text::iequals(h.name, name)) out.push_back(h.value);
  }
  return out;
}

using Values = std::vector<std::string>;

TEST(ProxyRouteTest, APrefixCoversItselfAndWhatFollowsASlash) {
  ProxyRoute api;
  api.path = "/api";
  for (const char* path : {"/api", "/api/", "/api/x", "/api/x/y", "/api//x"}) {
    EXPECT_TRUE(api.covers(path)) << path;
  }
  for (const char* path : {"/apix", "/ap", "/", "", "/API", "/x/api", "/api.json"}) {
    EXPECT_FALSE(api.covers(path)) << path;
  }
  ProxyRoute deep;
  deep.path = "/a/b";
  EXPECT_TRUE(deep.covers("/a/b/c"));
  EXPECT_FALSE(deep.covers("/a/bc"));
  EXPECT_FALSE(deep.covers("/a"));
  ProxyRoute root;
  root.path = "/";
  for (const char* path : {"/", "/x", "/api/x", "/_anything"}) EXPECT_TRUE(root.covers(path));
}

TEST(BackendTargetTest, StripsThePrefixAndPutsTheBasePathBefore) {
  struct Case {
    const char* path;
    const char* backend;
    bool strip;
    const char* target;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {"/", "http://b", false, "/", "/"},
      {"/", "http://b", true, "/x?y", "/x?y"},  // "/" strips nothing
      {"/app", "http://b", false, "/app/x?y", "/app/x?y"},
      {"/app", "http://b", true, "/app/x?y", "/x?y"},
      {"/app", "http://b", true, "/app", "/"},
      {"/app", "http://b", true, "/app/", "/"},
      {"/app", "http://b", true, "/app?y=1", "/?y=1"},
      {"/app", "http://b/base", true, "/app/x", "/base/x"},
      {"/app", "http://b/base", true, "/app", "/base/"},
      {"/app", "http://b/base", true, "/app/", "/base/"},
      {"/app", "http://b/base", true, "/app?q", "/base/?q"},
      {"/app", "http://b/base/", true, "/app/x", "/base/x"},
      {"/app", "http://b/base/", true, "/app", "/base/"},
      {"/app", "http://b/base", false, "/app/x", "/base/app/x"},
      {"/app", "http://b/", true, "/app/x", "/x"},
      {"/a/b", "http://b/base", true, "/a/b/c/d?e=/f", "/base/c/d?e=/f"},
      {"/", "http://b/base", false, "/", "/base/"},
      {"/", "http://b/base", false, "/x", "/base/x"},
      {"/app", "http://b", true, "/app//x", "//x"},  // what the client sent, minus the prefix
      // The sent bytes that spell the prefix, however they spell it (request_path.hpp).
      {"/app", "http://b", true, "/%61pp/x", "/x"},
      {"/app", "http://b", true, "//app/x", "/x"},
      {"/app", "http://b", true, "/app%2Fx", "/%2Fx"},
      {"/caf\xc3\xa9", "http://b", true, "/caf%C3%A9/x", "/x"},
      {"/app", "http://b", true, "/apps/x", "/apps/x"},  // not under it: untouched
      // What the matching path leaves out of its last segment goes with the prefix.
      {"/app", "http://b", true, "/app./x", "/x"},
      {"/app", "http://b/base", true, "/app;jsessionid=1/x", "/base/x"},
      {"/app", "http://b/base", true, "/app%20", "/base/"},
  };
  for (const auto& c : cases) {
    ProxyRoute route = route_to(c.path, c.backend);
    route.strip_prefix = c.strip;
    EXPECT_EQ(backend_target(route, c.target), c.expected)
        << c.path << " " << c.backend << " " << c.strip << " " << c.target;
  }
}

TEST(BackendRequestHeadTest, WritesTheRequestForTheBackend) {
  const RequestHead r = request(
      "GET /app/page?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: text/html\r\n"
      "Cookie: a=1\r\nCookie: b=2\r\nUser-Agent: test\r\n\r\n");
  ProxyRoute route = route_to("/app", "http://127.0.0.1:8080");
  ForwardContext context;
  context.peer_address = "203.0.113.7";
  context.client_address = "203.0.113.7";
  EXPECT_EQ(backend_request_head(r, route, context),
            "GET /app/page?x=1 HTTP/1.1\r\n"
            "Host: example.com\r\n"
            "Accept: text/html\r\n"
            "Cookie: a=1\r\n"
            "Cookie: b=2\r\n"
            "User-Agent: test\r\n"
            "Connection: keep-alive\r\n"
            "X-Forwarded-For: 203.0.113.7\r\n"
            "X-Forwarded-Proto: http\r\n"
            "X-Forwarded-Host: example.com\r\n"
            "Forwarded: for=203.0.113.7;proto=http;host=example.com\r\n"
            "X-Wsbridge-Route: /app\r\n"
            "\r\n");
}

TEST(BackendRequestHeadTest, HostFollowsTheRoutesHostMode) {
  const RequestHead r = request("GET / HTTP/1.1\r\nHost: public.example\r\n\r\n");
  ProxyRoute route = route_to("/", "http://10.0.0.5:8080/base");
  ForwardContext context;
  context.peer_address = context.client_address = "198.51.100.1";
  EXPECT_EQ(values(backend_request_head(r, route, context), "host"), Values{"public.example"});
  route.host_mode = HostMode::kBackend;
  EXPECT_EQ(values(backend_request_head(r, route, context), "host"), Values{"10.0.0.5:8080"});
  route.host_mode = HostMode::kFixed;
  route.host_value = "app.internal";
  const std::string head = backend_request_head(r, route, context);
  EXPECT_EQ(values(head, "host"), Values{"app.internal"});
  // X-Forwarded-Host and Forwarded still tell the browser's.
  EXPECT_EQ(values(head, "x-forwarded-host"), Values{"public.example"});
  EXPECT_TRUE(head.starts_with("GET /base/ HTTP/1.1\r\nHost: app.internal\r\n")) << head;
  // An HTTP/1.0 client may send no Host: the backend gets the backend's.
  route.host_mode = HostMode::kClient;
  const std::string old = backend_request_head(request("GET /x HTTP/1.0\r\n\r\n"), route, context);
  EXPECT_TRUE(old.starts_with("GET /base/x HTTP/1.0\r\nHost: 10.0.0.5:8080\r\n")) << old;
  EXPECT_EQ(values(old, "connection"), Values{"close"});
  EXPECT_TRUE(values(old, "x-forwarded-host").empty());
  EXPECT_EQ(values(old, "forwarded"), Values{"for=198.51.100.1;proto=http"});
}

TEST(BackendRequestHeadTest, DropsHopByHopFieldsAndWritesTheFraming) {
  const RequestHead r = request(
      "POST /up HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret, close\r\n"
      "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n"
      "Trailer: X-Sum\r\nUpgrade: h2c\r\nProxy-Authorization: Basic eDp5\r\n"
      "Proxy-Authenticate: Basic\r\nX-Secret: 1\r\nx-secret: 2\r\nX-Kept: yes\r\n"
      "Content-Length: 000012\r\n\r\n");
  ProxyRoute route = route_to("/", "http://b");
  ForwardContext context;
  context.peer_address = context.client_address = "192.0.2.1";
  const std::string head = backend_request_head(r, route, context);
  for (const char* dropped : {"keep-alive", "proxy-connection", "te", "trailer", "upgrade",
                              "proxy-authorization", "proxy-authenticate", "x-secret"}) {
    EXPECT_TRUE(values(head, dropped).empty()) << dropped << "\n" << head;
  }
  EXPECT_EQ(values(head, "x-kept"), Values{"yes"});
  EXPECT_EQ(values(head, "content-length"), Values{"12"});  // written from the framing
  EXPECT_EQ(values(head, "connection"), Values{"keep-alive"});
  EXPECT_TRUE(values(head, "transfer-encoding").empty());

  const RequestHead chunked =
      request("PUT /x HTTP/1.1\r\nHost: a\r\ntransfer-encoding: Chunked\r\n\r\n");
  const std::string c = backend_request_head(chunked, route, context);
  EXPECT_EQ(values(c, "transfer-encoding"), Values{"chunked"});
  EXPECT_TRUE(values(c, "content-length").empty());
  EXPECT_EQ(request(c).body, BodyFraming::kChunked);
  const RequestHead empty = request("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(values(backend_request_head(empty, route, context), "content-length"), Values{"0"});
  const RequestHead none = request("GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_TRUE(values(backend_request_head(none, route, context), "content-length").empty());
}

TEST(BackendRequestHeadTest, WebSocketUpgradesKeepTheirHandshakeFields) {
  const RequestHead r = request(
      "GET /socket HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
      "Upgrade: WebSocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
      "Sec-WebSocket-Extensions: permessage-deflate\r\nOrigin: https://a\r\n\r\n");
  ASSERT_TRUE(r.websocket_upgrade);
  ProxyRoute route = route_to("/", "http://b:8081/socket");
  ForwardContext context;
  context.peer_address = context.client_address = "192.0.2.1";
  const std::string head = backend_request_head(r, route, context);
  EXPECT_EQ(values(head, "connection"), Values{"Upgrade"});
  EXPECT_EQ(values(head, "upgrade"), Values{"websocket"});
  EXPECT_EQ(values(head, "sec-websocket-key"), Values{"dGhlIHNhbXBsZSBub25jZQ=="});
  EXPECT_EQ(values(head, "sec-websocket-version"), Values{"13"});
  EXPECT_EQ(values(head, "sec-websocket-protocol"), Values{"chat, superchat"});
  EXPECT_EQ(values(head, "sec-websocket-extensions"), Values{"permessage-deflate"});
  EXPECT_EQ(values(head, "origin"), Values{"https://a"});
  EXPECT_TRUE(request(head).websocket_upgrade);
  EXPECT_TRUE(head.starts_with("GET /socket/socket HTTP/1.1\r\n")) << head;
}

TEST(BackendRequestHeadTest, ClientsCannotSpoofWhatTheProxySets) {
  const RequestHead r = request(
      "GET / HTTP/1.1\r\nHost: a.example\r\nX-Forwarded-For: 10.9.9.9\r\n"
      "x-forwarded-proto: https\r\nX-Forwarded-Host: admin.internal\r\n"
      "Forwarded: for=10.9.9.9;proto=https\r\nX-Wsbridge-User: admin\r\n"
      "x-wsbridge-claims: eyJyb2xlIjoiYWRtaW4ifQ\r\nX-WSBRIDGE-AUTH-METHOD: jwt\r\n"
      "X-Wsbridge-Route: /admin\r\nX-Wsbridge-Anything: x\r\n\r\n");
  ProxyRoute route = route_to("/", "http://b");
  ForwardContext context;
  context.peer_address = context.client_address = "198.51.100.9";
  context.tls = true;
  const std::string head = backend_request_head(r, route, context);
  EXPECT_EQ(values(head, "x-forwarded-for"), Values{"198.51.100.9"});
  EXPECT_EQ(values(head, "x-forwarded-proto"), Values{"https"});  // ours: the request was TLS
  EXPECT_EQ(values(head, "x-forwarded-host"), Values{"a.example"});
  EXPECT_EQ(values(head, "forwarded"), Values{"for=198.51.100.9;proto=https;host=a.example"});
  EXPECT_TRUE(values(head, "x-wsbridge-user").empty());
  EXPECT_TRUE(values(head, "x-wsbridge-claims").empty());
  EXPECT_TRUE(values(head, "x-wsbridge-auth-method").empty());
  EXPECT_TRUE(values(head, "x-wsbridge-anything").empty());
  EXPECT_EQ(values(head, "x-wsbridge-route"), Values{"/"});
  EXPECT_EQ(head.find("10.9.9.9"), std::string::npos) << head;
  EXPECT_EQ(head.find("admin"), std::string::npos) << head;
  // Over plain HTTP the proto is http, whatever the client says.
  context.tls = false;
  EXPECT_EQ(values(backend_request_head(r, route, context), "x-forwarded-proto"), Values{"http"});
}

// WSGI, CGI and many frameworks read "X_Wsbridge_User" as X-Wsbridge-User (HTTP_X_WSBRIDGE_USER)
// and "Content_Length" as the body's length: fields are dropped by the name as backends may read
// it, not only as spelled. Before, `X_Wsbridge_User: admin` reached a WSGI backend as the user.
TEST(BackendRequestHeadTest, SpellingsBackendsReadAsTheSameNameAreDroppedToo) {
  const RequestHead r = request(
      "POST / HTTP/1.1\r\nHost: a.example\r\nX_Wsbridge_User: admin\r\nx.wsbridge.claims: e30\r\n"
      "X_Forwarded_For: 10.9.9.9\r\nX.Forwarded.Proto: https\r\nx_forwarded_host: "
      "admin.internal\r\n"
      "Content_Length: 99\r\nTransfer_Encoding: chunked\r\nProxy_Authorization: Basic eDp5\r\n"
      "Connection: X-Secret\r\nX_Secret: 1\r\nX_Kept_Field: yes\r\nContent-Length: 2\r\n\r\n");
  ProxyRoute route = route_to("/", "http://b");
  ForwardContext context;
  context.peer_address = context.client_address = "198.51.100.9";
  const std::string head = backend_request_head(r, route, context);
  for (const char* dropped : {"x_wsbridge_user", "x.wsbridge.claims", "x_forwarded_for",
                              "x.forwarded.proto", "x_forwarded_host", "content_length",
                              "transfer_encoding", "proxy_authorization", "x_secret"}) {
    EXPECT_TRUE(values(head, dropped).empty()) << dropped << "\n" << head;
  }
  EXPECT_EQ(head.find("admin"), std::string::npos) << head;
  EXPECT_EQ(head.find("10.9.9.9"), std::string::npos) << head;
  EXPECT_EQ(values(head, "x_kept_field"), Values{"yes"});
  EXPECT_EQ(values(head, "content-length"), Values{"2"});
}

TEST(BackendRequestHeadTest, ATrustedProxysChainIsExtended) {
  const RequestHead r = request(
      "GET / HTTP/1.1\r\nHost: internal:8080\r\nX-Forwarded-For: 203.0.113.5, 10.0.0.1\r\n"
      "X-Forwarded-For: 10.0.0.2\r\nX-Forwarded-Proto: https\r\n"
      "X-Forwarded-Host: www.example\r\nForwarded: for=203.0.113.5;proto=https\r\n"
      "X-Wsbridge-User: spoofed\r\n\r\n");
  ProxyRoute route = route_to("/", "http://b");
  ForwardContext context;
  context.peer_address = "10.0.0.3";
  context.client_address = "203.0.113.5";
  context.peer_trusted = true;
  const std::string head = backend_request_head(r, route, context);
  EXPECT_EQ(values(head, "x-forwarded-for"), Values{"203.0.113.5, 10.0.0.1, 10.0.0.2, 10.0.0.3"});
  EXPECT_EQ(values(head, "x-forwarded-proto"), Values{"https"});  // theirs, though we got http
  EXPECT_EQ(values(head, "x-forwarded-host"), Values{"www.example"});
  // Forwarded: theirs, then the node we received it from (the trusted proxy).
  EXPECT_EQ(values(head, "forwarded"),
            Values{"for=203.0.113.5;proto=https, for=10.0.0.3;proto=http;host=\"internal:8080\""});
  EXPECT_TRUE(values(head, "x-wsbridge-user").empty());  // trusted or not

  // A trusted proxy that sent none of them: ours alone, with the client it named.
  const RequestHead plain =
      request("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.5\r\n\r\n");
  const std::string p = backend_request_head(plain, route, context);
  EXPECT_EQ(values(p, "x-forwarded-for"), Values{"203.0.113.5, 10.0.0.3"});
  EXPECT_EQ(values(p, "x-forwarded-proto"), Values{"http"});
  EXPECT_EQ(values(p, "x-forwarded-host"), Values{"h"});
  EXPECT_EQ(values(p, "forwarded"), Values{"for=203.0.113.5;proto=http;host=h"});
}

TEST(BackendRequestHeadTest, ForwardedQuotesIpv6AndHostsWithPorts) {
  const RequestHead r = request("GET / HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n");
  ProxyRoute route = route_to("/", "http://b");
  ForwardContext context;
  context.peer_address = context.client_address = "2001:db8::7";
  context.tls = true;
  std::string head = backend_request_head(r, route, context);
  EXPECT_EQ(values(head, "forwarded"),
            Values{"for=\"[2001:db8::7]\";proto=https;host=\"[2001:db8::1]:8443\""});
  EXPECT_EQ(values(head, "x-forwarded-for"), Values{"2001:db8::7"});  // no brackets there
  context.peer_address = context.client_address = "::ffff:192.0.2.1";
  head = backend_request_head(request("GET / HTTP/1.1\r\nHost: a.b\r\n\r\n"), route, context);
  EXPECT_EQ(values(head, "forwarded"), Values{"for=\"[::ffff:192.0.2.1]\";proto=https;host=a.b"});
  context.peer_address = context.client_address = "";
  head = backend_request_head(request("GET / HTTP/1.1\r\nHost: a.b\r\n\r\n"), route, context);
  EXPECT_EQ(values(head, "forwarded"), Values{"for=unknown;proto=https;host=a.b"});
}

TEST(BackendRequestHeadTest, TheIdentityTravelsAsHeaders) {
  Identity identity;
  identity.user = "alice";
  identity.auth_method = "jwt";
  identity.claims = {{"sub", "alice"}, {"roles", {"admin", "ops"}}, {"n", "\xc3\xa9?>~"}};
  ProxyRoute route = route_to("/api", "http://b");
  ForwardContext context;
  context.peer_address = context.client_address = "192.0.2.1";
  context.identity = &identity;
  const RequestHead r = request("GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n");
  std::string head = backend_request_head(r, route, context);
  EXPECT_EQ(values(head, "x-wsbridge-user"), Values{"alice"});
  EXPECT_EQ(values(head, "x-wsbridge-auth-method"), Values{"jwt"});
  EXPECT_EQ(values(head, "x-wsbridge-route"), Values{"/api"});
  const Values claims = values(head, "x-wsbridge-claims");
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_EQ(claims[0].find_first_of("=+/"), std::string::npos) << claims[0];  // base64url, bare
  const auto decoded = base64url_decode(claims[0]);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(nlohmann::json::parse(*decoded), identity.claims);

  identity.auth_method.clear();
  head = backend_request_head(r, route, context);
  EXPECT_TRUE(values(head, "x-wsbridge-auth-method").empty());
  EXPECT_EQ(values(head, "x-wsbridge-user"), Values{"alice"});
  // Claims that are not UTF-8 (an API key's, from the configuration) do not throw.
  identity.claims = {{"bad", "\xff"}};
  EXPECT_EQ(values(backend_request_head(r, route, context), "x-wsbridge-claims").size(), 1u);
  // No identity headers: anonymous, or forward_identity off; the route is always named.
  route.forward_identity = false;
  head = backend_request_head(r, route, context);
  EXPECT_TRUE(values(head, "x-wsbridge-user").empty());
  EXPECT_TRUE(values(head, "x-wsbridge-claims").empty());
  EXPECT_EQ(values(head, "x-wsbridge-route"), Values{"/api"});
  route.forward_identity = true;
  identity.user.clear();
  EXPECT_TRUE(values(backend_request_head(r, route, context), "x-wsbridge-user").empty());
  EXPECT_TRUE(values(backend_request_head(r, route, context), "x-wsbridge-claims").empty());
  // A value that would end the header line is left out, and nothing is injected.
  identity.user = "mallory\r\nX-Wsbridge-Admin: 1";
  head = backend_request_head(r, route, context);
  EXPECT_TRUE(values(head, "x-wsbridge-user").empty());
  EXPECT_TRUE(values(head, "x-wsbridge-admin").empty());
  route.host_mode = HostMode::kFixed;
  route.host_value = "a\r\nb";
  EXPECT_EQ(backend_request_head(r, route, context).find("\r\nb"), std::string::npos);
}

TEST(ClientResponseHeadTest, RelaysEndToEndFieldsWithTheFramingItForwards) {
  const ResponseHead r = response(
      "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
      "Connection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\n"
      "Proxy-Authenticate: Basic\r\nTrailer: X-Sum\r\nContent-Length: 0005\r\n\r\n");
  EXPECT_EQ(client_response_head(r, true),
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
            "Content-Length: 5\r\n\r\n");
  EXPECT_EQ(client_response_head(r, false),
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
            "Content-Length: 5\r\nConnection: close\r\n\r\n");
  const ResponseHead old = response(
      "HTTP/1.0 200 Fine\r\nContent-Length: 3\r\n\r\n");  // a 1.0 backend: a 1.1 status line
  EXPECT_EQ(client_response_head(old, true), "HTTP/1.1 200 Fine\r\nContent-Length: 3\r\n\r\n");
  const ResponseHead te = response("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(client_response_head(te, true),
            "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST(ClientResponseHeadTest, BodiesUntilTheCloseCloseTheBrowsersConnection) {
  const ResponseHead r = response("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
  ASSERT_EQ(r.body, BodyFraming::kUntilClose);
  EXPECT_EQ(client_response_head(r, true),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n");
}

TEST(ClientResponseHeadTest, ResponsesWithoutABody) {
  // A HEAD's or a 304's Content-Length is what a GET would get: passed on.
  const ResponseHead head = response("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", "HEAD");
  EXPECT_EQ(client_response_head(head, true), "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
  // And so is its Transfer-Encoding: chunked (a 304's is not: a GET gets no body either).
  const ResponseHead chunked_head =
      response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD");
  EXPECT_EQ(client_response_head(chunked_head, true),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  const ResponseHead not_modified =
      response("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(client_response_head(not_modified, true),
            "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n");
  const ResponseHead no_content = response("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(client_response_head(no_content, false),
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
  // A 101 is the backend's answer to the upgrade: Connection and Upgrade pass as sent, and the
  // connection becomes the tunnel (no "Connection: close").
  const ResponseHead switching = response(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n"
      "Keep-Alive: timeout=5\r\n\r\n");
  EXPECT_EQ(client_response_head(switching, false),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Sec-WebSocket-Protocol: chat\r\n\r\n");
  const ResponseHead interim = response("HTTP/1.1 100 Continue\r\n\r\n");
  EXPECT_EQ(client_response_head(interim, false), "HTTP/1.1 100 Continue\r\n\r\n");
}

// A TLS listener's `hsts` goes on every final response; a backend's own policy is kept as it is
// (browsers read the first of two), and interim responses carry none.
TEST(ClientResponseHeadTest, TheListenersHstsUnlessTheBackendSentItsOwn) {
  const ResponseHead plain = response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(
      client_response_head(plain, true, "max-age=600"),
      "HTTP/1.1 200 OK\r\nStrict-Transport-Security: max-age=600\r\nContent-Length: 0\r\n\r\n");
  const ResponseHead own = response(
      "HTTP/1.1 404 Not Found\r\nstrict-transport-security: max-age=1\r\nContent-Length: "
      "0\r\n\r\n");
  EXPECT_EQ(client_response_head(own, true, "max-age=600"),
            "HTTP/1.1 404 Not Found\r\nstrict-transport-security: max-age=1\r\nContent-Length: "
            "0\r\n\r\n");
  const ResponseHead interim = response("HTTP/1.1 100 Continue\r\n\r\n");
  EXPECT_EQ(client_response_head(interim, true, "max-age=600"), "HTTP/1.1 100 Continue\r\n\r\n");
  EXPECT_EQ(client_response_head(plain, true, ""), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
}

TEST(ClientResponseHeadTest, EmptyReasonsGetTheStandardOne) {
  EXPECT_EQ(client_response_head(response("HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n"), true),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(client_response_head(response("HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n"), true),
            "HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n");
  // What the proxy writes parses back as the same response.
  const std::string out =
      client_response_head(response("HTTP/1.1 299 \r\nContent-Length: 7\r\nX-A: b\r\n\r\n"), true);
  const ResponseHead back = response(out);
  EXPECT_EQ(back.status, 299u);
  EXPECT_EQ(back.body, BodyFraming::kLength);
  EXPECT_EQ(back.content_length, 7u);
}

}  // namespace
}  // namespace wsbridge::reverse_proxy
