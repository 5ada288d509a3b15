// The HTTP reverse proxy (#18, docs/PROXY.md) against real backends: Debian's nginx as the legacy
// application (a static site, an /api/echo location that answers what it saw of the request, with
// cookies and custom headers, redirects, a 418) and the raw-socket backend of
// proxy_backends/http_backend.py (the request head exactly as it arrived, the backend connection
// it came on, hop-by-hop response fields). Checked: every method, headers both ways (custom ones
// pass, hop-by-hop ones and spoofed identity / forwarding ones do not, X-Forwarded-* and
// Forwarded set), redirects / cookies / caching / statuses unchanged, strip_prefix and
// host_header, the matching order (core, exact WebSocket route, longest prefix, static dir, 404),
// keep-alive and pipelining, 413, and [proxy.auth] with the identity forwarded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash } from 'node:crypto';
import {
  AUTH_TABLES, Nginx, ProxyBridge, RawConnection, freePort, httpRequest, openWebSocket,
  nthMessage, parseEcho, startHttpBackend, stopAll, streamHash, tempDir, token, uploadOutcome,
} from './proxy_support.mjs';

let dir;
let nginx;
let backend;  // http_backend.py
let bridge;   // the main one: prefixes, static dir, auth
let rooted;   // path = "/" and trusted_proxies

before(async () => {
  dir = tempDir();
  nginx = await new Nginx(dir).start();
  backend = await startHttpBackend();
  const raw = `http://127.0.0.1:${backend.port}`;
  const port = await freePort();
  bridge = await new ProxyBridge(dir, port, `${AUTH_TABLES}
[[listeners]]
address = "127.0.0.1"
port = ${port}
[[routes]]
path = "/api/ws-echo"
adapter = "echo"
prefix = "wsbridge echo: "
[[proxy]]
path = "/api"
backend = "${nginx.url}"
[[proxy]]
path = "/api/special"
backend = "${raw}"
[[proxy]]
path = "/site"
backend = "${nginx.url}"
strip_prefix = true
[[proxy]]
path = "/strip"
backend = "${nginx.url}/api/echo"
strip_prefix = true
[[proxy]]
path = "/host-backend"
backend = "${nginx.url}/api/echo"
strip_prefix = true
host_header = "backend"
[[proxy]]
path = "/host-fixed"
backend = "${nginx.url}/api/echo"
strip_prefix = true
host_header = "legacy.example"
[[proxy]]
path = "/raw"
backend = "${raw}"
allow_client_headers = ["X-Real-IP"]
[[proxy]]
path = "/small"
backend = "${raw}"
max_body_bytes = "1KiB"
[[proxy]]
path = "/ws-only"
backend = "ws://127.0.0.1:${backend.port}"
[[proxy]]
path = "/private"
backend = "${raw}"
[proxy.auth]
jwt = "main"
required = true
[[proxy]]
path = "/private-quiet"
backend = "${raw}"
forward_identity = false
[proxy.auth]
jwt = "main"
required = true
`).start();
  const rootPort = await freePort();
  rooted = await new ProxyBridge(dir, rootPort, `${AUTH_TABLES}
[[listeners]]
address = "127.0.0.1"
port = ${rootPort}
[[routes]]
path = "/ws-echo"
adapter = "echo"
prefix = "wsbridge echo: "
[[proxy]]
path = "/"
backend = "${nginx.url}"
[[proxy]]
path = "/api/echo/members"
backend = "${nginx.url}"
[proxy.auth]
jwt = "main"
required = true
`, { server: 'trusted_proxies = ["127.0.0.2"]' }).start();
});

after(async () => {
  await stopAll('proxy_http', dir, { bridges: [bridge, rooted], backends: [nginx, backend] });
});

const get = (target, options) => httpRequest(bridge.port, 'GET', target, options);
const json = (res) => JSON.parse(res.body.toString('utf8'));
// The backend's view of the request's fields: lower-case name -> [values].
function fields(seen) {
  const out = {};
  for (const [name, value] of seen.headers) (out[name.toLowerCase()] ??= []).push(value);
  return out;
}
const fromNginx = (res) => /^nginx/.test(res.headers.server ?? '');

test('every method reaches the backend, with its body, and the answer comes back', { timeout: 30000 }, async () => {
  for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    const body = ['POST', 'PUT', 'PATCH'].includes(method) ? 'payload' : undefined;
    const res = await httpRequest(bridge.port, method, '/api/echo/m?x=1', { body });
    assert.equal(res.status, 200, `${method}: ${res.body}`);
    const seen = parseEcho(res.body);
    assert.equal(seen.method, method);
    assert.equal(seen.uri, '/api/echo/m?x=1', 'no strip_prefix: the target reaches the backend unchanged');
    if (body) assert.equal(seen.content_length, '7', `${method}'s Content-Length`);
  }
  const head = await httpRequest(bridge.port, 'HEAD', '/api/echo/m');
  assert.equal(head.status, 200);
  assert.ok(Number(head.headers['content-length']) > 0, 'HEAD keeps the GET\'s Content-Length');
  assert.equal(head.body.length, 0);

  // Bodies of every method, as the raw backend received them.
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
    const body = `a ${method} body`;
    const res = await httpRequest(bridge.port, method, '/raw/echo', {
      body, headers: { 'Content-Type': 'text/plain' } });
    assert.equal(res.status, 200);
    const seen = json(res);
    assert.equal(seen.method, method);
    assert.equal(seen.body, body);
    assert.equal(seen.framing, 'length', 'a Content-Length body keeps its length');
    assert.deepEqual(fields(seen)['content-length'], [String(body.length)]);
    assert.deepEqual(fields(seen)['content-type'], ['text/plain']);
  }
});

test('request fields: end-to-end ones pass; hop-by-hop, spoofed identity and forwarding ones do not', { timeout: 30000 }, async () => {
  // The client is 127.0.0.2, so that its address is told from wsbridge's own (127.0.0.1).
  const c = await RawConnection.open(bridge.port, { localAddress: '127.0.0.2' });
  try {
    c.send(['GET /raw/echo?q=1 HTTP/1.1', `Host: 127.0.0.1:${bridge.port}`,
      'Connection: keep-alive, X-Drop-Me', 'X-Drop-Me: 1', 'Keep-Alive: timeout=5', 'TE: trailers',
      'Proxy-Authorization: Basic Zm9vOmJhcg==', 'Proxy-Connection: keep-alive', 'X-Custom: kept',
      'Cookie: a=1; b=2', 'User-Agent: proxy-tests', 'Accept: application/json',
      'X-Forwarded-For: 6.6.6.6', 'X-Forwarded-Proto: https', 'X-Forwarded-Host: evil.example',
      'Forwarded: for=6.6.6.6;proto=https;host=evil.example', 'X-Wsbridge-User: mallory',
      'X-Wsbridge-Auth-Method: jwt', 'X-Wsbridge-Claims: eyJzdWIiOiJtYWxsb3J5In0',
      'X-Wsbridge-Route: /evil', 'X-Original-URL: /admin/x', 'X_Rewrite_URL: /admin/y',
      'X-HTTP-Method-Override: DELETE', 'Remote-User: admin', 'X-Forwarded-Port: 443',
      'True-Client-IP: 6.6.6.7', 'X-Real-IP: 203.0.113.9']);
    const res = await c.response();
    assert.equal(res.status, 200, res.body.toString());
    const seen = json(res);
    const f = fields(seen);
    assert.equal(seen.target, '/raw/echo?q=1');
    assert.deepEqual(f['x-custom'], ['kept']);
    assert.deepEqual(f.cookie, ['a=1; b=2']);
    assert.deepEqual(f['user-agent'], ['proxy-tests']);
    assert.deepEqual(f.accept, ['application/json']);
    assert.deepEqual(f.host, [`127.0.0.1:${bridge.port}`], 'host_header "client" is the default');
    for (const hop of ['x-drop-me', 'keep-alive', 'te', 'trailer', 'proxy-authorization', 'proxy-connection', 'upgrade']) {
      assert.equal(f[hop], undefined, `the hop-by-hop field ${hop} reached the backend: ${f[hop]}`);
    }
    assert.ok(!(f.connection ?? []).join(',').toLowerCase().includes('x-drop-me'),
      `the client's Connection reached the backend: ${f.connection}`);
    assert.deepEqual(f['x-forwarded-for'], ['127.0.0.2'], 'an untrusted client\'s X-Forwarded-For is replaced by its address');
    assert.deepEqual(f['x-forwarded-proto'], ['http']);
    assert.deepEqual(f['x-forwarded-host'], [`127.0.0.1:${bridge.port}`]);
    assert.equal(f.forwarded?.length, 1, `Forwarded: ${f.forwarded}`);
    assert.match(f.forwarded[0], /for="?127\.0\.0\.2"?/);
    assert.match(f.forwarded[0], /proto=http(;|,|$)/);
    assert.ok(!JSON.stringify(seen.headers).includes('6.6.6.6'), 'the spoofed address reached the backend');
    assert.ok(!JSON.stringify(seen.headers).includes('evil.example'), 'the spoofed host reached the backend');
    assert.equal(f['x-wsbridge-user'], undefined, 'a spoofed X-Wsbridge-User reached the backend');
    assert.equal(f['x-wsbridge-auth-method'], undefined);
    assert.equal(f['x-wsbridge-claims'], undefined);
    assert.deepEqual(f['x-wsbridge-route'], ['/raw'], 'X-Wsbridge-Route names the prefix');
    // What backends believe from a proxy (URL and method overrides, the user of an auth proxy,
    // the client's address) is dropped unless the prefix allows it (allow_client_headers).
    for (const trusted of ['x-original-url', 'x_rewrite_url', 'x-http-method-override', 'remote-user',
      'x-forwarded-port', 'true-client-ip']) {
      assert.equal(f[trusted], undefined, `a client's ${trusted} reached the backend: ${f[trusted]}`);
    }
    assert.deepEqual(f['x-real-ip'], ['203.0.113.9'], 'allow_client_headers lets X-Real-IP through');
  } finally {
    c.close();
  }
  // A Host no DNS name could be: forwarded in X-Forwarded-Host, "evil.example,host" reads as a
  // list whose first element backends take for the host they build links with.
  for (const host of ['evil.example,127.0.0.1', 'a;b=c', 'a%2Cb']) {
    const bad = await RawConnection.open(bridge.port);
    try {
      bad.send(['GET /raw/echo?q=2 HTTP/1.1', `Host: ${host}`]);
      const res = await bad.response();
      assert.equal(res.status, 400, `Host: ${host}: ${res.status} ${res.body}`);
      assert.ok(!res.body.toString().includes('"target"'), `Host: ${host} reached the backend`);
    } finally {
      bad.close();
    }
  }

  // The same through nginx, as a legacy application sees it.
  const res = await get('/api/echo', { headers: { 'X-Custom': 'v', 'X-Forwarded-For': '6.6.6.6',
    'X-Wsbridge-User': 'mallory' }, localAddress: '127.0.0.3' });
  const seen = parseEcho(res.body);
  assert.equal(seen.custom, 'v');
  assert.equal(seen.xff, '127.0.0.3');
  assert.equal(seen.xfp, 'http');
  assert.equal(seen.xfh, `127.0.0.1:${bridge.port}`);
  assert.match(seen.forwarded, /for="?127\.0\.0\.3"?/);
  assert.equal(seen.user, '');
  assert.equal(seen.route, '/api');
});

test('response fields: cookies, custom and caching headers and statuses pass; hop-by-hop ones do not', { timeout: 30000 }, async () => {
  const res = await get('/api/echo');
  assert.equal(res.status, 200);
  assert.deepEqual(res.headers['set-cookie'], ['session=abc123; Path=/; HttpOnly', 'theme=dark; Path=/']);
  assert.equal(res.headers['x-backend'], 'nginx');
  assert.equal(res.headers['cache-control'], 'private, max-age=60');
  assert.match(res.headers['content-type'], /^text\/plain/);

  const teapot = await get('/api/teapot');
  assert.equal(teapot.status, 418);
  assert.equal(teapot.body.toString(), 'short and stout\n');

  const c = await RawConnection.open(bridge.port);
  try {
    c.send(['GET /raw/hop HTTP/1.1', 'Host: x']);
    const hop = await c.response();
    assert.equal(hop.status, 200);
    assert.equal(hop.body.toString(), 'hop-by-hop\n');
    assert.equal(hop.headers['x-end-to-end'], 'passes');
    assert.equal(hop.headers['x-backend-hop'], undefined, 'a field the backend\'s Connection named passed');
    assert.equal(hop.headers['proxy-authenticate'], undefined);
    assert.equal(hop.headers['proxy-connection'], undefined);
    assert.ok(!/timeout=99/.test(String(hop.headers['keep-alive'] ?? '')), 'the backend\'s Keep-Alive passed');
    assert.ok(!/x-backend-hop/i.test(String(hop.headers.connection ?? '')), 'the backend\'s Connection passed');

    // Conditional requests: ETag / Last-Modified pass, and a 304 (no body) leaves the connection
    // usable for the next request.
    c.send(['GET /site/index.html HTTP/1.1', 'Host: x']);
    const page = await c.response();
    assert.equal(page.status, 200);
    assert.match(page.body.toString(), /served by nginx/);
    assert.ok(page.headers.etag && page.headers['last-modified'], JSON.stringify(page.headers));
    c.send(['GET /site/index.html HTTP/1.1', 'Host: x', `If-None-Match: ${page.headers.etag}`]);
    const notModified = await c.response();
    assert.equal(notModified.status, 304);
    assert.equal(notModified.headers.etag, page.headers.etag);
    c.send(['GET /api/teapot HTTP/1.1', 'Host: x']);
    assert.equal((await c.response()).status, 418, 'the connection carried on after the 304');
  } finally {
    c.close();
  }
});

test('redirects pass unchanged', { timeout: 20000 }, async () => {
  const absolute = await fetch(bridge.url('/api/redirect'), { redirect: 'manual' });
  assert.equal(absolute.status, 302);
  assert.equal(absolute.headers.get('location'), 'https://elsewhere.example/landing?from=nginx');
  await absolute.arrayBuffer();
  const relative = await get('/api/relative-redirect');
  assert.equal(relative.status, 301);
  assert.equal(relative.headers.location, '/api/echo/moved');
});

test('strip_prefix and host_header', { timeout: 20000 }, async () => {
  const client = `127.0.0.1:${bridge.port}`;
  const cases = [
    ['/strip/a/b?c=1', '/api/echo/a/b?c=1', client],
    ['/strip', '/api/echo/', client],
    ['/strip?q=2', '/api/echo/?q=2', client],
    ['/host-backend/x', '/api/echo/x', `127.0.0.1:${nginx.port}`],
    ['/host-fixed/x?y', '/api/echo/x?y', 'legacy.example'],
  ];
  for (const [target, uri, host] of cases) {
    const res = await get(target);
    assert.equal(res.status, 200, `${target}: ${res.status} ${res.body}`);
    const seen = parseEcho(res.body);
    assert.equal(seen.uri, uri, `${target} reached the backend as ${seen.uri}`);
    assert.equal(seen.host, host, `${target}: Host`);
    assert.equal(seen.xfh, client, `${target}: X-Forwarded-Host is the browser's Host`);
  }
  const page = await get('/site/index.html');
  assert.equal(page.status, 200);
  assert.match(page.body.toString(), /served by nginx/);
  const root = await get('/site');
  assert.equal(root.status, 200, '/site reaches the backend as /');
  assert.match(root.body.toString(), /served by nginx/);
});

test('matching order: core, exact WebSocket route, longest prefix on whole segments, static dir, 404', { timeout: 30000 }, async () => {
  // The longest prefix wins.
  const special = await get('/api/special/echo?z=1');
  assert.equal(special.status, 200);
  assert.equal(json(special).target, '/api/special/echo?z=1', '/api/special goes to its own backend');
  const api = await get('/api/echo/deeper');
  assert.equal(parseEcho(api.body).uri, '/api/echo/deeper');
  // A prefix covers whole segments only: /api/specialx is /api's, /apix is nobody's.
  const specialx = await get('/api/specialx');
  assert.ok(fromNginx(specialx), `/api/specialx went to ${specialx.headers.server}: ${specialx.body}`);
  assert.equal(specialx.status, 404);
  const apiQuery = await get('/api?x=1');
  assert.ok(fromNginx(apiQuery), '/api?x=1 is covered by /api');
  const apix = await get('/apix.txt');
  assert.equal(apix.status, 200);
  assert.equal(apix.body.toString(), 'static apix\n', '/apix.txt comes from the static dir, not /api');
  assert.ok(!fromNginx(await get('/apix')), '/apix went to /api\'s backend');
  // A prefix beats the static dir.
  const local = await get('/api/local.txt');
  assert.equal(local.body.toString(), 'from nginx\n', 'the static dir answered under a [[proxy]] prefix');
  const index = await get('/');
  assert.match(index.body.toString(), /wsbridge static/);
  // Nothing matches: 404, from wsbridge.
  const nothing = await get('/nothing-here');
  assert.equal(nothing.status, 404);
  assert.ok(!fromNginx(nothing));
  // The core's own.
  const health = await get('/healthz');
  assert.equal(health.status, 200);
  assert.ok(!fromNginx(health));
  // An exact WebSocket route beats the prefix covering it.
  const ws = await openWebSocket(bridge.wsUrl('/api/ws-echo'));
  ws.send('hi');
  assert.equal((await nthMessage(ws, 0)).data.toString(), 'wsbridge echo: hi');
  ws.close();
  // A ws:// backend relays only upgrades.
  const wsOnly = await get('/ws-only/echo');
  assert.equal(wsOnly.status, 404);
});

test('path = "/" covers everything but /healthz, /_wsbridge/ and exact WebSocket routes; trusted proxies', { timeout: 30000 }, async () => {
  const at = (target, headers) => httpRequest(rooted.port, 'GET', target, { headers });
  const index = await at('/');
  assert.equal(index.status, 200);
  assert.match(index.body.toString(), /served by nginx/);
  const deep = await at('/some/deep/path?x=1');
  assert.equal(deep.status, 404);
  assert.ok(fromNginx(deep));
  const health = await at('/healthz');
  assert.equal(health.status, 200);
  assert.ok(!fromNginx(health), '/healthz went to the backend');
  const fallback = await at('/_wsbridge/nothing');
  assert.ok(!fromNginx(fallback), '/_wsbridge/ went to the backend');
  const ws = await openWebSocket(rooted.wsUrl('/ws-echo'));
  ws.send('root');
  assert.equal((await nthMessage(ws, 0)).data.toString(), 'wsbridge echo: root');
  ws.close();
  // From a trusted proxy (127.0.0.2) the chain is kept and the peer appended; from anyone else
  // it is replaced.
  const trusted = parseEcho((await httpRequest(rooted.port, 'GET', '/api/echo', {
    headers: { 'X-Forwarded-For': '203.0.113.7' }, localAddress: '127.0.0.2' })).body);
  assert.equal(trusted.xff, '203.0.113.7, 127.0.0.2');
  const untrusted = parseEcho((await httpRequest(rooted.port, 'GET', '/api/echo', {
    headers: { 'X-Forwarded-For': '203.0.113.7' }, localAddress: '127.0.0.3' })).body);
  assert.equal(untrusted.xff, '127.0.0.3');
  // A chain sent as several lines (a balancer that adds its own) is one list, as for WebSockets:
  // the client is its last address; X-Forwarded-Proto is the last word. The proxy used to take
  // the first line alone (the client's own claim) for Forwarded, its limits and its logs.
  const lines = parseEcho((await httpRequest(rooted.port, 'GET', '/api/echo', {
    headers: { 'X-Forwarded-For': ['198.51.100.1', '203.0.113.9'], 'X-Forwarded-Proto': ['http', 'https'] },
    localAddress: '127.0.0.2' })).body);
  assert.equal(lines.xff, '198.51.100.1, 203.0.113.9, 127.0.0.2');
  assert.match(lines.forwarded, /^for=203\.0\.113\.9;/);
  assert.equal(lines.xfp, 'https');
});

test('a guarded prefix covers every spelling of its paths that a backend reads as them', { timeout: 30000 }, async () => {
  // nginx (the backend here) decodes %XX and merges slashes before it picks a location, as most
  // servers do: matched on the bytes as sent, these went to the public "/" and its checks.
  const at = (target, headers) => httpRequest(rooted.port, 'GET', target, { headers });
  for (const target of ['/api/echo/members/list', '/api/echo/%6dembers/list', '//api/echo/members/list',
    '/api//echo///members/list', '/api/echo%2Fmembers/list', '/api/echo/members',
    // IIS drops a segment's trailing dots and spaces (nginx does not: these reach it as other
    // paths, but they must not pass the public "/" to a Windows backend either).
    '/api/echo/members./list', '/api/echo/members%20/list', '/api/echo/members.', '/api/echo.%20/members/list']) {
    const res = await at(target);
    assert.equal(res.status, 401, `${target}: ${res.status} ${fromNginx(res) ? '(from nginx)' : ''}`);
    assert.ok(!fromNginx(res), `${target} reached the backend`);
  }
  // A dot segment with a parameter (Java servers resolve "..;" as ".."), encoded slashes around dots.
  // Windows reads "..." and ". ." as dot segments and "/%20/" as "//"; overlong and fullwidth
  // forms of '.' and '/' are those characters to servers that decode or normalise them.
  for (const target of ['/api/echo/x/..;/members/list', '/api/echo/x%2F..%2Fmembers/list',
    '/api/echo/x/.../members/list', '/api/echo/x/.%20./members/list', '/api/%20/echo/members/list',
    '/api/echo/x/%E0%80%AE%E0%80%AE/members/list', '/api/echo/x/%EF%BC%8E%EF%BC%8E/members/list',
    '/api/echo%EF%BC%8Fmembers/list',
    // Compatibility forms of letters and spaces (fullwidth 'm', a no-break space), control
    // characters Java's trim() drops, a leading space, NTFS stream names.
    '/api/echo/%EF%BD%8Dembers/list', '/api/echo/members%C2%A0/list', '/api/echo/members%09/list',
    '/api/echo/%20members/list', '/api/echo/members::$DATA/list']) {
    const res = await at(target);
    assert.equal(res.status, 400, target);
    assert.ok(!fromNginx(res), `${target} reached the backend`);
  }
  const signedIn = await at('/api/echo/%6dembers/list', { Authorization: `Bearer ${token('alice')}` });
  assert.equal(signedIn.status, 200);
  assert.equal(parseEcho(signedIn.body).user, 'alice');
  assert.equal(parseEcho(signedIn.body).uri, '/api/echo/%6dembers/list', 'the target was not relayed as sent');
  const beside = await at('/api/echo/membership');  // not under the prefix: a segment differs
  assert.equal(beside.status, 200);
  assert.ok(fromNginx(beside));
});

test('keep-alive: one browser connection carries many requests; backend connections are reused', { timeout: 30000 }, async () => {
  const c = await RawConnection.open(bridge.port);
  try {
    const conns = [];
    for (let i = 1; i <= 8; ++i) {
      if (i % 3 === 0) {
        c.send(['HEAD /api/echo HTTP/1.1', 'Host: x']);
        const res = await c.response({ method: 'HEAD' });
        assert.equal(res.status, 200);
        assert.equal(res.body.length, 0);
      } else if (i % 3 === 1) {
        c.send([`GET /raw/echo?n=${i} HTTP/1.1`, 'Host: x']);
        const res = await c.response();
        assert.equal(res.status, 200);
        assert.equal(json(res).target, `/raw/echo?n=${i}`);
        conns.push(json(res).conn);
      } else {
        c.send([`POST /api/echo?n=${i} HTTP/1.1`, 'Host: x', 'Content-Length: 5'], Buffer.from('hello'));
        const res = await c.response();
        assert.equal(res.status, 200);
        assert.equal(parseEcho(res.body).uri, `/api/echo?n=${i}`);
      }
    }
    // Answers without a body whatever their fields say: HEAD of a chunked one, a 204.
    c.send(['HEAD /raw/stream?bytes=5000 HTTP/1.1', 'Host: x']);
    const headChunked = await c.response({ method: 'HEAD' });
    assert.equal(headChunked.status, 200);
    c.send(['GET /api/empty HTTP/1.1', 'Host: x']);
    assert.equal((await c.response()).status, 204);
    c.send(['GET /raw/echo?after=bodiless HTTP/1.1', 'Host: x']);
    const after = await c.response();
    assert.equal(json(after).target, '/raw/echo?after=bodiless', 'the connection carried on after bodiless answers');
    assert.equal(c.closed, false, 'wsbridge closed the keep-alive connection');
    assert.equal(new Set(conns).size, 1, `one backend connection should have served the sequential requests: ${conns}`);

    // An HTTP/1.0 request goes to the backend with "Connection: close": nothing more may be sent
    // on that connection (RFC 9112 9.6), even by a backend that answers keep-alive and stays.
    // It was pooled and the next request went out on it (a hostile probe).
    const old = await RawConnection.open(bridge.port);
    old.send(['GET /raw/echo?ignore_close=1 HTTP/1.0', 'Host: x']);
    const oldAnswer = await old.response();
    assert.equal(json(oldAnswer).version, 'HTTP/1.0');
    assert.deepEqual(json(oldAnswer).headers.filter(([n]) => n.toLowerCase() === 'connection'), [['Connection', 'close']]);
    for (let i = 0; i < 6; ++i) {  // (each on a new connection: some land on the same service thread)
      const next = await RawConnection.open(bridge.port);
      next.send([`GET /raw/echo?after_old=${i} HTTP/1.1`, 'Host: x', 'Connection: close']);
      assert.notEqual(json(await next.response()).conn, json(oldAnswer).conn,
        'a backend connection the proxy asked to close carried another request');
    }

    // Pipelined: three requests in one write, three answers in order.
    c.write(Buffer.from([1, 2, 3].map((n) => `GET /raw/echo?p=${n} HTTP/1.1\r\nHost: x\r\n\r\n`).join('')));
    for (const n of [1, 2, 3]) {
      const res = await c.response();
      assert.equal(res.status, 200);
      assert.equal(json(res).target, `/raw/echo?p=${n}`);
    }
  } finally {
    c.close();
  }

  // Node's own keep-alive agent: one socket, reused.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const ports = [];
    for (let i = 0; i < 3; ++i) {
      await new Promise((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port: bridge.port, path: `/api/echo?k=${i}`, agent }, (res) => {
          ports.push(req.socket.localPort);
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
      });
    }
    assert.equal(new Set(ports).size, 1, `the agent's requests used several sockets: ${ports}`);
  } finally {
    agent.destroy();
  }
});

// After a proxied request, the connection goes back to lws with the bytes the proxy read, and lws
// 4.1.6 cannot take a request with a body from a buffer given at adoption (it answered it and
// then spun in its service loop). Such a request then closed the connection unanswered (a
// keep-alive race, which browsers send again on a new connection): a page served through the
// proxy that falls back to long-polling lost its POSTs on its reused connections. lws now reads
// those bytes through the recv guard, as from the socket, and answers them in order.
test('after a proxied request: requests with bodies for wsbridge itself are answered, in order', { timeout: 30000 }, async () => {
  const proxiedFirst = async () => {
    const c = await RawConnection.open(bridge.port);
    c.send(['GET /raw/echo?first=1 HTTP/1.1', 'Host: x']);
    assert.equal((await c.response()).status, 200);
    return c;
  };
  // A fallback session's POST (the long-polling client's upstream) on a connection that carried
  // a proxied request: applied once, its message echoed to the session's poll.
  const open = await get('/_wsbridge/poll/api/ws-echo', { timeoutMs: 5000 });
  assert.equal(open.status, 200);
  const session = /"session":"([^"]+)"/.exec(open.body.toString())[1];
  const c = await proxiedFirst();
  try {
    const record = Buffer.from('1\nt5:hello');
    c.send([`POST /_wsbridge/send/api/ws-echo?s=${session} HTTP/1.1`, 'Host: x',
      'Content-Type: text/plain', `Content-Length: ${record.length}`], record);
    const posted = await c.response({ method: 'POST', timeoutMs: 5000 });
    assert.equal(posted.status, 200, posted.body.toString());
    assert.deepEqual(json(posted), { next: 2 });
    // A body that comes after its head, a body lws does not read, and the proxy again.
    c.send(['DELETE /nope HTTP/1.1', 'Host: x', 'Content-Length: 2']);
    await new Promise((resolve) => setTimeout(resolve, 200));
    c.write(Buffer.from('xxGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
    assert.equal((await c.response({ method: 'DELETE' })).status, 404);
    assert.equal(json(await c.response()).status, 'ok');
    c.send(['GET /raw/echo?again=1 HTTP/1.1', 'Host: x']);
    assert.equal(json(await c.response()).target, '/raw/echo?again=1');
    assert.equal(c.closed, false, 'the connection was closed');
  } finally {
    c.close();
  }
  const poll = await get(`/_wsbridge/poll/api/ws-echo?s=${session}&last=0`, { timeoutMs: 5000 });
  assert.match(poll.body.toString(), /wsbridge echo: hello/);

  // Bodies pipelined behind the proxied request, all in one write.
  const pipelined = await RawConnection.open(bridge.port);
  try {
    pipelined.write(Buffer.from('GET /raw/echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n' +
      'PUT /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx' +
      'GET /raw/echo?n=2 HTTP/1.1\r\nHost: x\r\n\r\n' +
      'DELETE /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz' +
      'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
    assert.equal(json(await pipelined.response()).target, '/raw/echo?n=1');
    assert.equal((await pipelined.response({ method: 'PUT' })).status, 404);
    assert.equal(json(await pipelined.response()).target, '/raw/echo?n=2');
    assert.equal((await pipelined.response({ method: 'DELETE' })).status, 404);
    assert.equal(json(await pipelined.response()).status, 'ok');
  } finally {
    pipelined.close();
  }
  const fresh = await httpRequest(bridge.port, 'GET', '/healthz', { timeoutMs: 3000 });
  assert.equal(fresh.status, 200, 'the server stopped serving');
});

// A connection goes back and forth between the proxy and lws as its requests ask. Requests
// pipelined behind one that went back to lws went with it, in lws' own buffer: when one of them
// came back to the proxy, the ones behind it were lost (the 4th here was never answered).
test('pipelined requests that go back and forth between the proxy and wsbridge are all answered, in order', { timeout: 30000 }, async () => {
  const relayed = (n) => `GET /raw/echo?n=${n} HTTP/1.1\r\nHost: x\r\n\r\n`;
  const own = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
  const sequences = [
    [relayed(1), own, relayed(2), own],
    [relayed(1), own, relayed(2), own, relayed(3), own],
    [own, relayed(1), own, relayed(2), relayed(3), own, own, relayed(4)],
  ];
  for (const sequence of sequences) {
    const c = await RawConnection.open(bridge.port);
    try {
      c.write(Buffer.from(sequence.join('')));
      for (const [i, request] of sequence.entries()) {
        const res = await c.response({ timeoutMs: 5000 });
        assert.equal(res.status, 200, `answer ${i + 1} of ${sequence.length}`);
        if (request === own) {
          assert.equal(json(res).status, 'ok', `answer ${i + 1} is not wsbridge's /healthz`);
        } else {
          assert.equal(json(res).target, request.split(' ')[1], `answer ${i + 1} out of order`);
        }
      }
      assert.equal(c.closed, false, 'the connection was closed');
    } finally {
      c.close();
    }
  }
});

// When a request comes back to the proxy, what follows it goes along: the heads lws holds and
// the bytes the guard has not given lws yet. Before, where lws held more than whole heads (an
// upgrade pipelined behind, a pipeline longer than the guard keeps), the connection closed
// unanswered at that request (and before that, the first case hung for good and leaked the
// socket, and the second was answered by wsbridge itself, a 404, instead of the backend).
test('pipelines with an upgrade or many requests behind a proxied one are all answered', { timeout: 30000 }, async () => {
  const relayed = (n) => `GET /raw/echo?n=${n} HTTP/1.1\r\nHost: x\r\n\r\n`;
  const own = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
  const upgrade = 'GET /api/ws-echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
  const cases = [
    { sent: [relayed(1), own, relayed(2), upgrade], answered: 3, upgraded: true },
    { sent: [relayed(1), ...Array(16).fill(own), relayed(2)], answered: 18, upgraded: false },
  ];
  for (const { sent, answered, upgraded } of cases) {
    const c = await RawConnection.open(bridge.port);
    try {
      c.write(Buffer.from(sent.join('')));
      for (let i = 0; i < answered; ++i) {
        const res = await c.response({ timeoutMs: 5000 });
        assert.equal(res.status, 200, `answer ${i + 1}`);
        if (sent[i] === own) assert.equal(json(res).status, 'ok', `answer ${i + 1}`);
        else assert.equal(json(res).target, sent[i].split(' ')[1], `answer ${i + 1}`);
      }
      if (upgraded) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        assert.match(c.buffer.toString('latin1'), /^HTTP\/1\.1 101 /, 'the upgrade was not answered');
      }
      assert.equal(c.closed, false, 'the connection was closed');
    } finally {
      c.close();
    }
  }
});

// A request for wsbridge whose head TCP cut in two, behind a proxied one: the proxy reads on
// until the head has come, then hands it back. Before, the connection was closed unanswered.
test('a request for wsbridge whose head arrives in pieces after a proxied one is answered', { timeout: 20000 }, async () => {
  const c = await RawConnection.open(bridge.port);
  try {
    // (Written without waiting for answers, as a pipelining client does; the pieces 300 ms apart.)
    for (const piece of ['GET /raw/echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /heal',
      'thz HTTP/1.1\r\nHost: x\r\n\r\nGET /raw/e', 'cho?n=2 HTTP/1.1\r\nHost: x\r\n\r\n']) {
      c.write(Buffer.from(piece));
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    assert.equal(json(await c.response({ timeoutMs: 5000 })).target, '/raw/echo?n=1');
    assert.equal(json(await c.response({ timeoutMs: 5000 })).status, 'ok');
    assert.equal(json(await c.response({ timeoutMs: 5000 })).target, '/raw/echo?n=2');
    assert.equal(c.closed, false);
  } finally {
    c.close();
  }
});

test('413 for a body over max_body_bytes: at once for a Content-Length, as it grows for chunked', { timeout: 20000 }, async () => {
  const ok = await httpRequest(bridge.port, 'POST', '/small/echo', { body: Buffer.alloc(1000, 0x61) });
  assert.equal(ok.status, 200);
  assert.equal(json(ok).body_bytes, 1000);

  const declared = await RawConnection.open(bridge.port);
  try {
    declared.send(['POST /small/echo HTTP/1.1', 'Host: x', 'Content-Length: 2048']);  // no body sent
    const res = await declared.response({ timeoutMs: 3000 });
    assert.equal(res.status, 413);
    assert.ok(await declared.closedWithin(3000), 'the connection stays open after a 413');
  } finally {
    declared.close();
  }

  const chunked = await RawConnection.open(bridge.port);
  try {
    chunked.send(['POST /small/echo HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked']);
    for (let i = 0; i < 4 && !chunked.closed && chunked.buffer.length === 0; ++i) {
      chunked.write(Buffer.concat([Buffer.from('200\r\n'), Buffer.alloc(512, 0x62), Buffer.from('\r\n')]));
      await new Promise((r) => setTimeout(r, 100));
    }
    const res = await chunked.response({ timeoutMs: 3000 });
    assert.equal(res.status, 413, 'a chunked body past max_body_bytes before any response: 413');
  } finally {
    chunked.close();
  }
});

test('413 reaches a client that sends its whole over-limit body at once', { timeout: 30000 }, async () => {
  // What fetch() or a form does: the head and 5 MiB right behind it. wsbridge answers 413 at the
  // head; the client, still writing, must be able to read it (a lingering close, RFC 9112
  // section 9.6), not get a reset.
  for (const framing of ['length', 'chunked']) {
    const outcome = await uploadOutcome(bridge.port, '/small/echo', 5 * 1024 * 1024, framing);
    assert.equal(outcome.status, 413, `${framing}: the 413 was lost: ${outcome.error}`);
  }
  // nginx's own 413 (client_max_body_size), relayed: the same.
  const relayed = await uploadOutcome(bridge.port, '/api/limited', 5 * 1024 * 1024, 'length');
  assert.equal(relayed.status, 413, `nginx's 413 was lost: ${relayed.error}`);
});

test('[proxy.auth]: 401 without a valid token; with one the identity reaches the backend', { timeout: 20000 }, async () => {
  const none = await get('/private/echo');
  assert.equal(none.status, 401);
  assert.match(String(none.headers['www-authenticate']), /Bearer/);
  const forged = `${token('alice').slice(0, -4)}AAAA`;
  const bad = await get('/private/echo', { headers: { Authorization: `Bearer ${forged}` } });
  assert.equal(bad.status, 401);

  const res = await get('/private/echo?x=1', { headers: { Authorization: `Bearer ${token('alice')}`,
    'X-Wsbridge-User': 'mallory', 'X-Wsbridge-Claims': 'e30' } });
  assert.equal(res.status, 200, res.body.toString());
  const f = fields(json(res));
  assert.deepEqual(f['x-wsbridge-user'], ['alice']);
  assert.equal(f['x-wsbridge-auth-method']?.length, 1);
  assert.match(f['x-wsbridge-auth-method'][0], /jwt/i);
  assert.equal(f['x-wsbridge-claims']?.length, 1);
  const claims = JSON.parse(Buffer.from(f['x-wsbridge-claims'][0], 'base64url').toString());
  assert.equal(claims.sub, 'alice');
  assert.equal(claims.iss, 'tests');
  assert.deepEqual(f['x-wsbridge-route'], ['/private']);

  const quiet = await get('/private-quiet/echo', { headers: { Authorization: `Bearer ${token('bob')}`,
    'X-Wsbridge-User': 'mallory' } });
  assert.equal(quiet.status, 200);
  const q = fields(json(quiet));
  assert.equal(q['x-wsbridge-user'], undefined, 'forward_identity = false still sent X-Wsbridge-User');
  assert.equal(q['x-wsbridge-claims'], undefined);
  const anonymous = await get('/private-quiet/echo');
  assert.equal(anonymous.status, 401);
});

test('Connection: close from the client: the whole answer, then the close', { timeout: 20000 }, async () => {
  // An answer the backend writes at once (head and a 4100-byte body in one send), one it
  // streams, and nginx's: each complete before wsbridge closes the connection.
  const cases = [
    [['POST /raw/echo HTTP/1.1', 'Host: x', 'Connection: close', 'Content-Length: 3618'], Buffer.alloc(3618, 0x62)],
    [['GET /raw/stream?bytes=300000&framing=length HTTP/1.1', 'Host: x', 'Connection: close']],
    [['GET /raw/stream?bytes=300000 HTTP/1.1', 'Host: x', 'Connection: close']],
    [['GET /api/echo HTTP/1.1', 'Host: x', 'Connection: close']],
  ];
  for (const [lines, body] of cases) {
    const c = await RawConnection.open(bridge.port);
    try {
      c.send(lines, body);
      const res = await c.response().catch((e) => {
        throw new Error(`${lines[0]} with Connection: close: ${e.message}; ${c.buffer.length} bytes of it came`);
      });
      assert.equal(res.status, 200, lines[0]);
      if (lines[0].startsWith('POST')) assert.equal(json(res).body_bytes, 3618);
      if (lines[0].includes('stream')) assert.equal(res.body.length, 300000, lines[0]);
      assert.ok(await c.closedWithin(3000), `${lines[0]}: the connection stayed open after Connection: close`);
    } finally {
      c.close();
    }
  }
});

test('an answer the backend ends by closing reaches a keep-alive client whole', { timeout: 20000 }, async () => {
  // Old applications answer without Content-Length or chunking and close. wsbridge either chunks
  // it or closes the browser's connection after it; either way all of it arrives.
  const c = await RawConnection.open(bridge.port);
  try {
    c.send(['GET /raw/until-close?bytes=300000 HTTP/1.1', 'Host: x']);
    const res = await c.response();
    assert.equal(res.status, 200);
    assert.equal(res.body.length, 300000);
    assert.equal(createHash('sha256').update(res.body).digest('hex'), streamHash(300000));
  } finally {
    c.close();
  }
});

test('concurrent requests on many connections each get their own answer', { timeout: 30000 }, async () => {
  const results = await Promise.all(Array.from({ length: 64 }, async (_, i) => {
    if (i % 4 === 3) {
      const res = await get(`/api/echo/c${i}`, { keepAlive: true });
      return [i, res.status, parseEcho(res.body).uri === `/api/echo/c${i}`];
    }
    const body = `body of request ${i} `.repeat(i * 50 + 1);
    const res = await httpRequest(bridge.port, 'POST', `/raw/echo?c=${i}`, { body, keepAlive: true });
    const seen = json(res);
    return [i, res.status, seen.target === `/raw/echo?c=${i}` && seen.body_bytes === Buffer.byteLength(body)];
  }));
  for (const [i, status, matches] of results) {
    assert.equal(status, 200, `request ${i}`);
    assert.ok(matches, `request ${i} got another request's answer`);
  }
});

test('an HTTP/1.0 client: relayed as 1.0, its connection closed after the answer', { timeout: 20000 }, async () => {
  const c = await RawConnection.open(bridge.port);
  try {
    c.send(['GET /raw/echo?v=10 HTTP/1.0', 'Host: x']);
    const res = await c.response();
    assert.equal(res.status, 200);
    assert.equal(json(res).version, 'HTTP/1.0', 'the backend must not chunk what a 1.0 client cannot read');
    assert.ok(await c.closedWithin(3000), 'a 1.0 connection without keep-alive stayed open');
  } finally {
    c.close();
  }
  const n = await RawConnection.open(bridge.port);
  try {
    n.send(['GET /api/echo HTTP/1.0', 'Host: x']);
    const res = await n.response();
    assert.equal(res.status, 200);
    assert.equal(res.chunked, false);
    assert.equal(parseEcho(res.body).uri, '/api/echo');
  } finally {
    n.close();
  }
  // A backend that answers a 1.0 request in chunks anyway (RFC 9112 6.1 forbids it): 502, where
  // the chunk framing used to reach the client, which reads it as the body.
  const k = await RawConnection.open(bridge.port);
  try {
    k.send(['GET /raw/stream?bytes=100&framing=chunked HTTP/1.0', 'Host: x']);
    const res = await k.response();
    assert.equal(res.status, 502);
    assert.match(res.body.toString(), /HTTP\/1\.0 request in chunks/);
  } finally {
    k.close();
  }
});

test('Expect: 100-continue: the backend\'s interim 100 reaches the client before it sends the body', { timeout: 20000 }, async () => {
  const c = await RawConnection.open(bridge.port);
  try {
    c.send(['POST /raw/echo HTTP/1.1', 'Host: x', 'Content-Length: 11', 'Expect: 100-continue']);
    const interim = await c.response({ timeoutMs: 5000 });
    assert.equal(interim.status, 100, 'no 100 Continue before the body was sent');
    c.write(Buffer.from('hello world'));
    const res = await c.response();
    assert.equal(res.status, 200);
    const seen = json(res);
    assert.equal(seen.body, 'hello world');
    assert.deepEqual(fields(seen).expect, ['100-continue']);
  } finally {
    c.close();
  }
});
