// The reverse proxy on an https:// / wss:// listener (#18, docs/PROXY.md): the browser's TLS
// session leaves lws with its socket (onto memory BIOs) and comes back to lws with it when a
// request that is not the proxy's arrives on the same connection. Checked over one keep-alive
// TLS connection: a relayed request, /healthz answered by lws (the session handed back), a relayed
// request again (taken over again), an upload streamed through, and a relayed WebSocket over wss://.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import {
  Child, MiB, RawConnection, binary, floodStalledBackend, freePort, mib, openWebSocket, nthMessage,
  stalledBackendReport, startHttpBackend, startWsBackend, stopAll, streamHash, tempDir, waitFor,
  AUTH_TABLES, token, within,
} from './proxy_support.mjs';
import { JWT_SECRET } from './mqtt_passthrough_support.mjs';

let dir;
let httpBackend;
let wsBackend;
let bridge;
let port;

// One request on `agent`; resolves { status, body, socket } (the TLS socket that carried it).
function request(agent, method, target, body) {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port, method, path: target, agent, rejectUnauthorized: false,
      headers: body ? { 'Content-Length': body.length } : {},
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString(), socket: req.socket }));
    });
    req.on('error', reject);
    req.setTimeout(10000, () => req.destroy(new Error(`${method} ${target} timed out`)));
    req.end(body);
  });
}

before(async () => {
  dir = tempDir();
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  httpBackend = await startHttpBackend();
  wsBackend = await startWsBackend();
  port = await freePort();
  const config = path.join(dir, 'wsbridge.toml');
  const threads = process.env.WSBRIDGE_TEST_THREADS || '2';
  writeFileSync(config, `[server]
threads = ${threads}
shutdown_timeout = "1s"
[[listeners]]
address = "127.0.0.1"
port = ${port}
[listeners.tls]
cert_file = "${path.join(dir, 'cert.pem')}"
key_file = "${path.join(dir, 'key.pem')}"
[[proxy]]
path = "/app"
backend = "http://127.0.0.1:${httpBackend.port}"
[[proxy]]
path = "/ws"
backend = "ws://127.0.0.1:${wsBackend.port}"
[[proxy]]
path = "/ws-private"
backend = "ws://127.0.0.1:${wsBackend.port}"
[proxy.auth]
jwt = "main"
required = true
${AUTH_TABLES}`);
  const child = new Child(binary, ['--config', config], { ...process.env, WSBRIDGE_TEST_JWT_SECRET: JWT_SECRET });
  bridge = { child, stop: () => child.stop(), get log() { return child.output; } };
  const probe = new https.Agent({ keepAlive: false, rejectUnauthorized: false });
  await waitFor(async () => {
    if (!child.running) throw new Error(`wsbridge exited:\n${child.output}`);
    return (await request(probe, 'GET', '/healthz').catch(() => null))?.status === 200;
  }, 'wsbridge over https');
});

after(async () => {
  await stopAll('proxy_tls', dir, { bridges: [bridge], backends: [httpBackend, wsBackend] });
});

test('one TLS connection goes from the proxy to lws and back, its session intact', { timeout: 30000 }, async () => {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
  try {
    const first = await request(agent, 'GET', '/app/echo?n=1');
    assert.equal(first.status, 200, first.body);
    const echoed = JSON.parse(first.body);
    assert.equal(echoed.target, '/app/echo?n=1');
    const xfp = echoed.headers.find(([name]) => name.toLowerCase() === 'x-forwarded-proto');
    assert.equal(xfp?.[1], 'https', 'the backend is told the client came over TLS');

    const health = await request(agent, 'GET', '/healthz');
    assert.equal(health.status, 200, health.body);
    assert.equal(JSON.parse(health.body).status, 'ok');
    assert.equal(health.socket, first.socket, 'the same TLS connection carried /healthz (handed back to lws)');

    const again = await request(agent, 'GET', '/app/echo?n=2');
    assert.equal(again.status, 200, again.body);
    assert.equal(again.socket, first.socket, 'the same TLS connection was taken over again');
    assert.equal(JSON.parse(again.body).target, '/app/echo?n=2');

    const body = randomBytes(5 * 1024 * 1024);
    const upload = await request(agent, 'POST', '/app/echo', body);
    assert.equal(upload.status, 200, upload.body);
    const received = JSON.parse(upload.body);
    assert.equal(received.body_bytes, body.length);
    assert.equal(received.body_sha256, createHash('sha256').update(body).digest('hex'));
    assert.equal(upload.socket, first.socket);
  } finally {
    agent.destroy();
  }
});

// The same on TLS, pipelined: requests lws held behind one that came back to the proxy went with
// it (the 4th here was lost before), and requests with a body for wsbridge are answered.
test('pipelined over one TLS connection: requests going back and forth are all answered, in order', { timeout: 30000 }, async () => {
  const relayed = (n) => `GET /app/echo?n=${n} HTTP/1.1\r\nHost: x\r\n\r\n`;
  const own = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
  // With bodies too, for wsbridge itself (a 404 each): lws reads them, handed back, through the
  // recv guard as from the TLS session (before, such a request closed the connection unanswered).
  const withBody = 'DELETE /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz';
  const sequence = [relayed(1), own, relayed(2), withBody, own, relayed(3), withBody, own];
  const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  await new Promise((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject); });
  const c = new RawConnection(socket);
  try {
    c.write(Buffer.from(sequence.join('')));
    for (const [i, request] of sequence.entries()) {
      const res = await c.response({ timeoutMs: 5000 });
      if (request === withBody) {
        assert.equal(res.status, 404, `answer ${i + 1} of ${sequence.length}`);
        continue;
      }
      assert.equal(res.status, 200, `answer ${i + 1} of ${sequence.length}`);
      const body = JSON.parse(res.body.toString());
      if (request === own) {
        assert.equal(body.status, 'ok', `answer ${i + 1} is not wsbridge's /healthz`);
      } else {
        assert.equal(body.target, request.split(' ')[1], `answer ${i + 1} out of order`);
      }
    }
    assert.equal(c.closed, false, 'the connection was closed');
  } finally {
    c.close();
  }
});

test('a WebSocket relayed over wss://: echo and the close code both ways', { timeout: 30000 }, async () => {
  const ws = await openWebSocket(`wss://127.0.0.1:${port}/ws/echo`, { rejectUnauthorized: false });
  ws.send('over tls');
  const reply = await nthMessage(ws, 0);
  assert.equal(reply.data.toString(), 'over tls');
  ws.close(4001, 'bye');
  const closed = await ws.closed;
  assert.equal(closed.code, 4001);
});

// Over TLS the tunnel stays on lws' streams: its own timer ends it at the token's expiry.
test('over wss://, a relayed WebSocket ends when the token that opened it expires', { timeout: 20000 }, async () => {
  const ws = await openWebSocket(`wss://127.0.0.1:${port}/ws-private/echo`,
    { rejectUnauthorized: false, headers: { Authorization: `Bearer ${token('alice', 2)}` } });
  const opened = Date.now();
  ws.send('before');
  assert.equal((await nthMessage(ws, 0)).data.toString(), 'before');
  await within(ws.closed, 6000, 'the tunnel to end at the token\'s expiry');
  assert.ok(Date.now() - opened < 3500, `ended ${Date.now() - opened} ms after it opened`);
  await waitFor(() => /proxy: tunnel close remote=\S+ path=\/ws-private\/echo by=wsbridge \(token expired\)/.test(bridge.log),
    'the access-log line', 3000);
});

// Over TLS the tunnel stays on lws' streams (a plain one is relayed off lws: proxy_websocket's
// tests): the same back-pressure there.
test('over wss://, a backend that stops reading: wsbridge stops reading the browser, nothing lost', { timeout: 60000 }, async () => {
  const FLOOD = 64;
  // (The stall outlasts the samples by 2.5 s: encrypting the 64 MiB flood at the client took over
  // 2 s with other tests beside it.)
  const ws = await openWebSocket(`wss://127.0.0.1:${port}/ws/stall?ms=7000`, { rejectUnauthorized: false });
  const { opened, before, afterwards, closedEarly } = await floodStalledBackend(ws, FLOOD, 2000, 800);
  assert.ok(Date.now() - opened < 6500, 'the samples were not taken while the backend stalled');
  assert.equal(closedEarly, undefined, 'the tunnel to a stalled backend ended');
  console.log(`stalled backend over wss://: client bufferedAmount ${mib(before)} -> ${mib(afterwards)}`);
  assert.ok(afterwards >= 16 * MiB, `the client could hand over all but ${mib(afterwards)} of ${FLOOD} MiB`);
  assert.ok(before - afterwards < 2 * MiB, `the flood kept moving (${mib(before)} -> ${mib(afterwards)})`);
  const report = await stalledBackendReport(ws);
  assert.equal(report.messages, FLOOD);
  assert.equal(report.bytes, FLOOD * MiB);
  assert.equal(report.sha256, streamHash(FLOOD * MiB), 'the flood arrived altered');
  ws.close();
});
