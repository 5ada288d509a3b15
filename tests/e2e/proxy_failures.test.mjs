// Backend failures and bad requests at the reverse proxy (#18, docs/PROXY.md "Backend failures",
// "Bad requests"), each followed by proof that wsbridge is still up and relaying: a backend that
// is down (502 with a body, for requests and upgrades), one that never answers (504 after
// response_timeout), one that resets or answers garbage (502), one that dies in the middle of a
// response (the client sees the body cut and its connection closed), a pooled connection the
// backend closed while idle (not used for the next request), a WebSocket backend killed in the
// middle of a session (the client's WebSocket closes), malformed requests (their status and
// Connection: close), and the failures counted in /metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  AUTH_TABLES, ProxyBridge, RawConnection, assertAlive, freePort, httpRequest, nthMessage, openWebSocket,
  sleep, startHttpBackend, startWsBackend, stopAll, tempDir, token, uploadOutcome, waitFor, within,
} from './proxy_support.mjs';

let dir;
let backend;
let wsBackend;  // killed by a test
let bridge;
let adminPort;

before(async () => {
  dir = tempDir();
  backend = await startHttpBackend();
  wsBackend = await startWsBackend();
  const deadPort = await freePort();  // nothing listens there
  const port = await freePort();
  adminPort = await freePort();
  const raw = `http://127.0.0.1:${backend.port}`;
  bridge = await new ProxyBridge(dir, port, `${AUTH_TABLES}
[admin]
address = "127.0.0.1"
port = ${adminPort}
[[listeners]]
address = "127.0.0.1"
port = ${port}
[[proxy]]
path = "/down"
backend = "http://127.0.0.1:${deadPort}"
[[proxy]]
path = "/ws-down"
backend = "ws://127.0.0.1:${deadPort}"
[[proxy]]
path = "/raw"
backend = "${raw}"
response_timeout = "1s"
[[proxy]]
path = "/ok"
backend = "${raw}"
[[proxy]]
path = "/guarded"
backend = "${raw}"
[proxy.auth]
jwt = "main"
required = true
[[proxy]]
path = "/idle"
backend = "${raw}"
idle_timeout = "1s"
[[proxy]]
path = "/ws"
backend = "ws://127.0.0.1:${wsBackend.port}"
`).start();
});

after(async () => {
  await stopAll('proxy_failures', dir, { bridges: [bridge], backends: [backend, wsBackend] });
});

const get = (target, options) => httpRequest(bridge.port, 'GET', target, options);
const alive = () => assertAlive(bridge, '/ok/echo');

test('a backend that is down: 502 with a body, for requests and upgrades', { timeout: 30000 }, async () => {
  for (const method of ['GET', 'POST']) {
    const started = Date.now();
    const res = await httpRequest(bridge.port, method, '/down/page', { body: method === 'POST' ? 'x=1' : undefined });
    assert.equal(res.status, 502, `${method}: ${res.body}`);
    assert.ok(res.body.length > 0, '502 without a body');
    assert.ok(Date.now() - started < 3000, 'a refused connection took long to report');
  }
  const upgrade = await openWebSocket(bridge.wsUrl('/ws-down/echo')).then(
    (ws) => { ws.close(); return { status: 101 }; }, (e) => e);
  assert.equal(upgrade.status, 502, `the upgrade to a backend that is down: ${upgrade.message}`);
  await alive();
});

test('a backend that never answers: 504 after response_timeout', { timeout: 30000 }, async () => {
  const started = Date.now();
  const res = await get('/raw/hang', { timeoutMs: 15000 });
  const took = Date.now() - started;
  assert.equal(res.status, 504, res.body.toString());
  assert.ok(res.body.length > 0, '504 without a body');
  assert.ok(took >= 900 && took < 5000, `504 after ${took} ms with response_timeout = "1s"`);
  await alive();
});

test('a backend that resets the connection or answers garbage: 502', { timeout: 30000 }, async () => {
  const reset = await get('/raw/reset');
  assert.equal(reset.status, 502, reset.body.toString());
  const garbage = await get('/raw/garbage');
  assert.equal(garbage.status, 502, garbage.body.toString());
  // A head whose lines end in LF alone: 502 at once, not 504 after response_timeout (1 s here).
  const started = Date.now();
  const bareLf = await get('/raw/bare-lf', { timeoutMs: 15000 });
  assert.equal(bareLf.status, 502, bareLf.body.toString());
  assert.match(bareLf.body.toString(), /LF alone/);
  assert.ok(Date.now() - started < 800, `answered after ${Date.now() - started} ms`);
  await alive();
});

test('a backend that dies in the middle of a response: the client sees the body cut', { timeout: 30000 }, async () => {
  const c = await RawConnection.open(bridge.port);
  try {
    c.send(['GET /raw/truncate HTTP/1.1', 'Host: x']);
    const outcome = await c.response({ timeoutMs: 10000 }).then((res) => ({ res }), (error) => ({ error }));
    assert.ok(outcome.error, `a cut body was relayed as a whole response: ${outcome.res?.status} ${outcome.res?.body.length} bytes`);
    assert.ok(outcome.error.closed, `the client's connection was not closed: ${outcome.error.message}`);
    // The head (200, Content-Length: 1000000) was read; fewer body bytes than it announced came.
    assert.ok(c.buffer.length < 1000000, `${c.buffer.length} bytes reached the client`);
    console.log(`truncated response: ${c.buffer.length} of the 1000000 announced body bytes reached the client`);
  } finally {
    c.close();
  }
  await alive();
});

// A probe saw the malformed size line reach the browser before the proxy closed the connection.
test('a backend\'s malformed chunk-size line never reaches the client: the body is cut before it', { timeout: 30000 }, async () => {
  for (const line of ['ffffffffffffffffff', '-1', '5%3B%22open', 'zz']) {
    const c = await RawConnection.open(bridge.port);
    try {
      c.send([`GET /raw/bad-chunk?line=${line} HTTP/1.1`, 'Host: x']);
      assert.ok(await c.closedWithin(10000), `the client's connection was not closed (${line})`);
      const text = c.buffer.toString('latin1');
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      assert.match(text, /^HTTP\/1\.1 200/);
      assert.equal(body, '5\r\nhello\r\n', `relayed after the head (${line})`);
    } finally {
      c.close();
    }
  }
  await alive();
});

test('a backend that goes silent in the middle of a body: the client\'s connection closed after idle_timeout', { timeout: 30000 }, async () => {
  const c = await RawConnection.open(bridge.port);
  const started = Date.now();
  try {
    c.send(['GET /idle/slow-body?ms=15000 HTTP/1.1', 'Host: x']);
    const outcome = await c.response({ timeoutMs: 10000 }).then((res) => ({ res }), (error) => ({ error }));
    const took = Date.now() - started;
    assert.ok(outcome.error?.closed, `no close after idle_timeout: ${outcome.error?.message ?? 'a whole response'}`);
    assert.ok(c.buffer.length < 1000, 'the body was whole');
    assert.ok(took >= 900 && took < 5000, `closed after ${took} ms with idle_timeout = "1s"`);
  } finally {
    c.close();
  }
  await alive();
});

test('a pooled connection the backend closed while idle is not used for the next request', { timeout: 30000 }, async () => {
  for (let i = 0; i < 3; ++i) {
    const first = await get('/ok/echo?then_close=1');
    assert.equal(first.status, 200);
    await sleep(300);  // the backend's close has arrived at wsbridge
    const next = await get(`/ok/echo?after=${i}`);
    assert.equal(next.status, 200, `the request after a backend-side close got ${next.status}: ${next.body}`);
  }
});

test('a backend that refuses an upload before reading it: its answer reaches the client', { timeout: 40000 }, async () => {
  // The backend answers 413 with Connection: close at once and drains the rest; a client still
  // sending its 12 MiB (under the prefix's 16 MiB limit) must get that answer, not a reset
  // (RFC 9112 section 9.6: a lingering close).
  for (const framing of ['length', 'chunked']) {
    const outcome = await uploadOutcome(bridge.port, '/ok/reject', 12 * 1024 * 1024, framing);
    assert.equal(outcome.status, 413, `${framing}: the backend's early answer was lost: ${outcome.error}`);
    assert.equal(outcome.body, 'upload refused\n');
  }
  await alive();
});

// A connection to the bridge; with `second`, one that has carried a proxied answer already.
async function openConnection(second) {
  const c = await RawConnection.open(bridge.port);
  if (second) {
    c.send(['GET /ok/echo HTTP/1.1', 'Host: x']);
    assert.equal((await c.response({ timeoutMs: 5000 })).status, 200);
  }
  return c;
}

test('malformed requests under a prefix: their status and Connection: close', { timeout: 30000 }, async () => {
  const cases = [
    ['Content-Length with Transfer-Encoding', 400,
      ['POST /ok/echo HTTP/1.1', 'Host: x', 'Content-Length: 5', 'Transfer-Encoding: chunked'], '5\r\nhello\r\n0\r\n\r\n'],
    ['two differing Content-Lengths', 400,
      ['POST /ok/echo HTTP/1.1', 'Host: x', 'Content-Length: 5', 'Content-Length: 6'], 'hello!'],
    ['a transfer coding other than chunked', 501,
      ['POST /ok/echo HTTP/1.1', 'Host: x', 'Transfer-Encoding: gzip'], ''],
    ['a head over 16 KiB', 431,
      ['GET /ok/echo HTTP/1.1', 'Host: x', `X-Big: ${'a'.repeat(20000)}`], ''],
    ['HTTP/2.0 on an HTTP/1 request line', 505,
      ['GET /ok/echo HTTP/2.0', 'Host: x'], ''],
  ];
  // Each as a connection's first request and as one after a proxied answer on a kept-alive
  // connection: the refusal of a later request used to be dropped (a bare close, no status).
  for (const [what, status, lines, body] of cases) {
    for (const second of [false, true]) {
      const c = await openConnection(second);
      try {
        c.send(lines, Buffer.from(body));
        const res = await c.response({ timeoutMs: 5000 });
        const which = `${what}${second ? ' (second request)' : ''}`;
        assert.equal(res.status, status, `${which}: ${res.status} ${res.body}`);
        assert.match(String(res.headers.connection), /close/i, `${which}: no Connection: close`);
        assert.ok(await c.closedWithin(3000), `${which}: the connection stayed open`);
      } finally {
        c.close();
      }
    }
  }
  // Lines ending in LF alone: 400 at once (the head's end was never found: closed after 10 s).
  for (const second of [false, true]) {
    const c = await openConnection(second);
    try {
      c.write(Buffer.from('GET /ok/echo HTTP/1.1\nHost: x\n\n'));
      const res = await c.response({ timeoutMs: 3000 });
      assert.equal(res.status, 400, `bare LF: ${res.status} ${res.body}`);
      assert.ok(await c.closedWithin(3000));
    } finally {
      c.close();
    }
  }
  await alive();
});

test('a backend that sends interim (1xx) heads without end: 502 after eight, memory bounded; a failure after one is a 502 too', { timeout: 30000 }, async () => {
  const few = await RawConnection.open(bridge.port);
  try {
    few.send(['GET /ok/early-hints?n=2 HTTP/1.1', 'Host: x']);
    const hints = [await few.response({ timeoutMs: 5000 }), await few.response({ timeoutMs: 5000 })];
    assert.deepEqual(hints.map((r) => r.status), [103, 103]);
    const final = await few.response({ timeoutMs: 5000 });
    assert.equal(final.status, 200);
    assert.equal(final.body.toString(), 'ok');
  } finally {
    few.close();
  }
  const flood = await RawConnection.open(bridge.port);
  try {
    flood.send(['GET /ok/early-hints?n=1000000 HTTP/1.1', 'Host: x']);
    const statuses = [];
    for (;;) {
      const res = await flood.response({ timeoutMs: 5000 });
      statuses.push(res.status);
      if (res.status >= 200) break;
    }
    // Eight relayed, then the answer the browser can act on (it used to be a bare close).
    assert.deepEqual(statuses, [...Array(8).fill(103), 502]);
    assert.ok(await flood.closedWithin(3000));
  } finally {
    flood.close();
  }
  // A 100 Continue, then a backend that never answers: 504 after response_timeout (1 s).
  const after = await RawConnection.open(bridge.port);
  try {
    after.send(['GET /raw/early-hints-then-hang HTTP/1.1', 'Host: x']);
    const statuses = [(await after.response({ timeoutMs: 5000 })).status];
    statuses.push((await after.response({ timeoutMs: 5000 })).status);
    assert.deepEqual(statuses, [103, 504]);
  } finally {
    after.close();
  }
  await alive();
});

test('a kept-alive connection whose next head drips in is closed at handshake_timeout', { timeout: 30000 }, async () => {
  const port = await freePort();
  const quick = await new ProxyBridge(dir, port, `
[limits]
handshake_timeout = "2s"
[[listeners]]
address = "127.0.0.1"
port = ${port}
[[proxy]]
path = "/ok"
backend = "http://127.0.0.1:${backend.port}"
`).start();
  const c = await RawConnection.open(port);
  try {
    c.send(['GET /ok/echo HTTP/1.1', 'Host: x']);
    assert.equal((await c.response({ timeoutMs: 5000 })).status, 200);
    const started = Date.now();
    const head = 'GET /ok/echo HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    let sent = 0;
    while (!c.closed && Date.now() - started < 12000) {
      c.write(head[sent++ % head.length]);  // a byte every 300 ms: the head never ends
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.ok(c.closed, 'the connection was still open after 12 s of a head that never ended');
    assert.ok(Date.now() - started < 6000, `closed after ${Date.now() - started} ms`);
  } finally {
    c.close();
    await quick.stop();
  }
});

test('a WebSocket backend killed in the middle of a session: the client\'s WebSocket closes', { timeout: 30000 }, async () => {
  const ws = await openWebSocket(bridge.wsUrl('/ws/echo'));
  ws.send('before');
  assert.equal((await nthMessage(ws, 0)).data.toString(), 'before');
  await wsBackend.stop('SIGKILL');
  const closed = await within(ws.closed, 10000, 'the client\'s WebSocket to close after its backend died');
  console.log(`client close after the backend was killed: ${closed.code} ${closed.reason}`);
  assert.notEqual(closed.code, 1000, 'a dead backend is not a normal closure');
  await alive();
  const again = await openWebSocket(bridge.wsUrl('/ws/echo')).then(
    (w) => { w.close(); return { status: 101 }; }, (e) => e);
  assert.equal(again.status, 502, 'an upgrade to the dead backend');
});

test('the failures are counted in /metrics', { timeout: 20000 }, async () => {
  const metrics = (await httpRequest(adminPort, 'GET', '/metrics')).body.toString();
  const value = (name, ...labels) => metrics.split('\n')
    .filter((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  assert.ok(value('wsbridge_proxy_backend_errors_total', 'kind="connect"') >= 3, 'connect errors');
  assert.ok(value('wsbridge_proxy_backend_errors_total', 'kind="timeout"') >= 1, 'timeouts');
  assert.ok(value('wsbridge_proxy_backend_errors_total', 'kind="malformed"') >= 1, 'malformed responses');
  assert.ok(value('wsbridge_proxy_requests_total', 'code="5xx"') >= 4, '5xx answers');
  assert.ok(value('wsbridge_proxy_requests_total', 'code="2xx"') >= 5, '2xx answers');
  assert.match(metrics, /^wsbridge_proxy_tunnels\{/m);
});

// A backend endpoint that answers 101 to anything (its status taken from the request) would turn
// the connection into a raw pipe to the backend, through which a client writes plain requests for
// prefixes [proxy.auth] guards. Only the 101 with this request's Sec-WebSocket-Accept is relayed.
test('a 101 that is not the WebSocket answer to the request\'s key: 502, never a pipe past [proxy.auth]', { timeout: 30000 }, async () => {
  const key = 'dGhlIHNhbXBsZSBub25jZQ==';
  const upgrade = (target, fields = [`Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13']) => [
    `GET ${target} HTTP/1.1`, 'Host: a', 'Upgrade: websocket', 'Connection: Upgrade', ...fields];
  const guarded = ['GET /guarded/echo HTTP/1.1', 'Host: a'];
  assert.equal((await get('/guarded/echo')).status, 401, 'the guarded prefix let a request in');
  assert.equal((await get('/guarded/echo', { headers: { Authorization: `Bearer ${token()}` } })).status, 200);

  // The control: the real answer makes a tunnel, and what is written into it reaches the backend.
  const control = await RawConnection.open(bridge.port);
  control.send(upgrade('/ok/switch?accept=right'));
  assert.equal((await control.response()).status, 101, 'the right answer was not relayed');
  control.send(guarded);
  assert.equal((await control.response()).status, 200, 'the control tunnel did not reach the backend');
  control.close();

  for (const accept of ['none', 'wrong', 'bare']) {
    // The first request of a connection (lws read it) and a later one (the proxy's own reading).
    for (const later of [false, true]) {
      const c = await RawConnection.open(bridge.port);
      if (later) {
        c.send(['GET /ok/echo HTTP/1.1', 'Host: a']);
        assert.equal((await c.response()).status, 200);
      }
      c.send(upgrade(`/ok/switch?accept=${accept}`));
      const res = await c.response();
      assert.equal(res.status, 502, `accept=${accept} later=${later}: ${res.body}`);
      assert.match(res.body.toString(), /101/);
      c.send(guarded);
      assert.ok(await c.closedWithin(5000), `accept=${accept}: the connection stayed open`);
      assert.doesNotMatch(c.buffer.toString(), /HTTP\/1\.1 200/, 'a guarded request went through');
      c.close();
    }
  }
  await alive();
});

test('an upgrade without a valid Sec-WebSocket-Key is 400, another version 426, never relayed', { timeout: 30000 }, async () => {
  const cases = [
    [[], 400],
    [['Sec-WebSocket-Key: c2hvcnQ=', 'Sec-WebSocket-Version: 13'], 400],
    [['Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version: 13'], 400],
    [['Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 8'], 426],
  ];
  for (const [fields, status] of cases) {
    // A later request on a kept-alive connection: the proxy's own reading of the head.
    const c = await RawConnection.open(bridge.port);
    c.send(['GET /ok/echo HTTP/1.1', 'Host: a']);
    assert.equal((await c.response()).status, 200);
    c.send(['GET /ok/switch?accept=right HTTP/1.1', 'Host: a', 'Upgrade: websocket', 'Connection: Upgrade', ...fields]);
    const res = await c.response();
    assert.equal(res.status, status, `${fields.join(' | ')}: ${res.body}`);
    if (status === 426) assert.equal(res.headers['sec-websocket-version'], '13');
    c.close();
  }
  await alive();
});

// Bytes in the same read as the 101 (the backend's first frames) and bytes the browser sent right
// behind its upgrade are relayed and counted in the tunnel's log line (they were left out).
test('bytes around the 101 are relayed and counted in the tunnel\'s byte counts', { timeout: 20000 }, async () => {
  const c = await RawConnection.open(bridge.port);
  c.write(['GET /ok/switch?accept=right&extra=hello HTTP/1.1', 'Host: a', 'Upgrade: websocket',
    'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13',
    '', 'early'].join('\r\n'));
  assert.equal((await c.response()).status, 101);
  await waitFor(() => c.buffer.toString() === 'hello', 'the bytes behind the 101', 5000);
  c.close();
  await waitFor(() => /proxy: tunnel close remote=\S+ path=\/ok\/switch\S* .*bytes_up=5 bytes_down=5/.test(bridge.log),
    'the tunnel close line with 5 bytes each way', 5000);
});
