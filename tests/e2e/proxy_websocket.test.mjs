// The WebSocket pass-through (#18, docs/PROXY.md) against a real WebSocket server nobody here
// wrote the protocol code of: Debian's python3-websockets (proxy_backends/ws_backend.py), with
// Node's `ws` as the browser. Checked: text and binary echo (with and without the backend's own
// permessage-deflate), pings, the backend's choice of subprotocol, close codes both ways, the
// upgrade request's fields at the backend (identity, forwarding, spoofs dropped), [proxy.auth] on
// upgrades, a refused upgrade reaching the client with its status, fields and body, an exact
// WebSocket route beating the prefix, and back-pressure both ways with wsbridge's memory bounded:
// a backend that stops reading while the client floods it, and a client that stops reading while
// the backend floods it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  AUTH_TABLES, MiB, ProxyBridge, RssProbe, assertBoundedGrowth, block, floodStalledBackend, freePort,
  httpRequest, mib, nthMessage, openWebSocket, sleep, stalledBackendReport, startWsBackend, stopAll,
  streamHash, tempDir, token, waitFor, within,
} from './proxy_support.mjs';

let dir;
let backend;
let bridge;

before(async () => {
  dir = tempDir();
  backend = await startWsBackend();
  const port = await freePort();
  bridge = await new ProxyBridge(dir, port, `${AUTH_TABLES}
[[listeners]]
address = "127.0.0.1"
port = ${port}
[[routes]]
path = "/ws/wsb-echo"
adapter = "echo"
prefix = "wsbridge echo: "
[[proxy]]
path = "/ws"
backend = "ws://127.0.0.1:${backend.port}"
[[proxy]]
path = "/mixed"
backend = "http://127.0.0.1:${backend.port}"
[[proxy]]
path = "/no-ws"
backend = "http://127.0.0.1:${backend.port}"
websocket = false
[[proxy]]
path = "/ws-idle"
backend = "ws://127.0.0.1:${backend.port}"
websocket_idle_timeout = "1s"
[[proxy]]
path = "/ws-origin"
backend = "ws://127.0.0.1:${backend.port}"
[proxy.auth]
allowed_origins = ["http://good.example"]
[[proxy]]
path = "/ws-private"
backend = "ws://127.0.0.1:${backend.port}"
[proxy.auth]
jwt = "main"
required = true
`).start();
});

after(async () => {
  await stopAll('proxy_websocket', dir, { bridges: [bridge], backends: [backend] });
});

const url = (p) => bridge.wsUrl(p);
function fields(report) {
  const out = {};
  for (const [name, value] of report.headers) (out[name.toLowerCase()] ??= []).push(value);
  return out;
}
// The backend's "CLOSED <op> <code> <reason>" lines since `mark`.
const closedAtBackend = (mark, op) => backend.lines(`CLOSED ${op} `, mark).map(([, , code, ...r]) => ({
  code: Number(code), reason: r.join(' ') }));

test('text and binary messages and pings pass both ways, with or without permessage-deflate', { timeout: 30000 }, async () => {
  for (const perMessageDeflate of [false, true]) {
    const ws = await openWebSocket(url('/ws/echo'), { perMessageDeflate });
    if (perMessageDeflate) {
      assert.match(String(ws.extensions), /permessage-deflate/, 'the backend\'s extension choice reaches the client');
    } else {
      assert.equal(ws.extensions, '');
    }
    const big = block(7, 4 * MiB - 3);
    const sent = [];
    for (let i = 0; i < 50; ++i) sent.push({ data: Buffer.from(`text ${i} ✓`), binary: false });
    sent.push({ data: Buffer.from([0, 1, 2, 255]), binary: true });
    sent.push({ data: big, binary: true });
    sent.push({ data: Buffer.alloc(0), binary: false });
    for (const m of sent) ws.send(m.binary ? m.data : m.data.toString(), { binary: m.binary });
    await waitFor(() => ws.received.length >= sent.length, `${sent.length} echoes`, 15000);
    ws.received.forEach((m, i) => {
      assert.equal(m.binary, sent[i].binary, `message ${i}'s type`);
      assert.ok(m.data.equals(sent[i].data), `message ${i} came back altered`);
    });
    const pong = new Promise((resolve) => ws.once('pong', (d) => resolve(d.toString())));
    ws.ping('are you there');
    assert.equal(await within(pong, 5000, 'the pong'), 'are you there');
    ws.close(1000, 'done');
    assert.equal((await ws.closed).code, 1000);
  }
});

test('the backend chooses the subprotocol among the client\'s offer', { timeout: 20000 }, async () => {
  const ws = await openWebSocket(url('/ws/headers'), { protocols: ['chat.v1', 'chat.v2'] });
  assert.equal(ws.protocol, 'chat.v2');
  const report = JSON.parse((await nthMessage(ws, 0)).data);
  assert.equal(report.subprotocol, 'chat.v2');
  const offered = (fields(report)['sec-websocket-protocol'] ?? []).join(',').split(',').map((s) => s.trim());
  assert.deepEqual(offered, ['chat.v1', 'chat.v2'], 'the offer reaches the backend as the client made it');
  ws.close();
  const plain = await openWebSocket(url('/ws/headers'));
  assert.equal(plain.protocol, '');
  assert.equal(JSON.parse((await nthMessage(plain, 0)).data).subprotocol, null);
  plain.close();
});

test('close codes and reasons are relayed both ways', { timeout: 20000 }, async () => {
  let mark = backend.mark();
  const byClient = await openWebSocket(url('/ws/echo'));
  byClient.send('hello');
  await nthMessage(byClient, 0);
  byClient.close(4001, 'bye');
  const echoed = await within(byClient.closed, 5000, 'the close handshake');
  assert.deepEqual(echoed, { code: 4001, reason: 'bye' });
  await waitFor(() => closedAtBackend(mark, 'echo').length > 0, 'the backend to see the close', 5000);
  assert.deepEqual(closedAtBackend(mark, 'echo'), [{ code: 4001, reason: 'bye' }]);

  mark = backend.mark();
  const byBackend = await openWebSocket(url('/ws/echo'));
  byBackend.send('please-close:4002:server-bye');
  assert.deepEqual(await within(byBackend.closed, 5000, 'the backend\'s close'), { code: 4002, reason: 'server-bye' });
  await waitFor(() => closedAtBackend(mark, 'echo').length > 0, 'the backend\'s close to complete', 5000);
  assert.deepEqual(closedAtBackend(mark, 'echo'), [{ code: 4002, reason: 'server-bye' }]);
});

test('the upgrade request reaches the backend with forwarding fields, spoofs dropped', { timeout: 20000 }, async () => {
  const ws = await openWebSocket(url('/ws/headers?x=1'), { headers: { 'X-Custom': 'kept',
    'X-Wsbridge-User': 'mallory', 'X-Forwarded-For': '6.6.6.6', Origin: 'http://app.example' },
  localAddress: '127.0.0.2' });
  const report = JSON.parse((await nthMessage(ws, 0)).data);
  ws.close();
  await ws.closed;
  const f = fields(report);
  assert.equal(report.path, '/ws/headers?x=1');
  assert.deepEqual(f['x-custom'], ['kept']);
  assert.deepEqual(f.origin, ['http://app.example']);
  assert.deepEqual(f.host, [`127.0.0.1:${bridge.port}`]);
  assert.deepEqual(f['x-forwarded-for'], ['127.0.0.2'], 'the client\'s address (127.0.0.2), its own X-Forwarded-For dropped');
  assert.equal(f['x-forwarded-proto']?.length, 1);
  assert.match(f['x-forwarded-proto'][0], /^(http|ws)$/);
  assert.equal(f['x-wsbridge-user'], undefined, 'a spoofed X-Wsbridge-User reached the backend');
  assert.deepEqual(f['x-wsbridge-route'], ['/ws']);
  assert.match(String(f.upgrade), /^websocket$/i);
  assert.equal(f['sec-websocket-key']?.length, 1);
});

test('[proxy.auth] on upgrades: 401 without a token, the identity at the backend with one', { timeout: 20000 }, async () => {
  await sleep(300);  // the backend has logged the earlier tests' closes
  const mark = backend.mark();
  const refused = await openWebSocket(url('/ws-private/headers')).then(
    (ws) => { ws.close(); return { status: 101 }; }, (e) => e);
  assert.equal(refused.status, 401);
  const ws = await openWebSocket(url('/ws-private/headers'), {
    headers: { Authorization: `Bearer ${token('alice')}`, 'X-Wsbridge-User': 'mallory' } });
  const f = fields(JSON.parse((await nthMessage(ws, 0)).data));
  assert.deepEqual(f['x-wsbridge-user'], ['alice']);
  assert.equal(f['x-wsbridge-claims']?.length, 1);
  assert.equal(JSON.parse(Buffer.from(f['x-wsbridge-claims'][0], 'base64url')).sub, 'alice');
  ws.close();
  await ws.closed;
  // A browser's way to send it: a bearer.<token> subprotocol entry beside a real one (the
  // recv guard takes it out of the head; it used to be lost to [proxy.auth], a 401). The backend
  // gets the offer without the token.
  const viaProtocol = await openWebSocket(url('/ws-private/headers'), { protocols: ['chat.v1', 'chat.v2', `bearer.${token('alice')}`] });
  const g = fields(JSON.parse((await nthMessage(viaProtocol, 0)).data));
  assert.deepEqual(g['x-wsbridge-user'], ['alice']);
  assert.equal(viaProtocol.protocol, 'chat.v2');
  assert.ok(!JSON.stringify(g['sec-websocket-protocol']).includes('bearer.'), 'the token reached the backend');
  viaProtocol.close();
  await viaProtocol.closed;
  await sleep(200);
  assert.equal(closedAtBackend(mark, 'headers').length, 2, 'the refused upgrade reached the backend');
});

// A WebSocket route's connection ends when its token expires (1008); a relayed one ended never.
test('a relayed WebSocket ends when the token that opened it expires, however busy', { timeout: 20000 }, async () => {
  const ws = await openWebSocket(url('/ws-private/echo'), { headers: { Authorization: `Bearer ${token('alice', 2)}` } });
  const opened = Date.now();
  let n = 0;
  const timer = setInterval(() => { if (ws.readyState === ws.OPEN) ws.send(`tick ${n++}`); }, 100);
  try {
    await within(ws.closed, 6000, 'the tunnel to end at the token\'s expiry');
    const took = Date.now() - opened;
    assert.ok(took < 3500, `ended ${took} ms after it opened with a token valid for at most 2 s`);
    assert.ok(ws.received.length >= 3, `only ${ws.received.length} echoes before the end`);
    await waitFor(() => /proxy: tunnel close remote=\S+ path=\/ws-private\/echo by=wsbridge \(token expired\)/.test(bridge.log),
      'the access-log line of the tunnel ended at its token\'s expiry', 3000);
  } finally {
    clearInterval(timer);
  }
});

test('a backend that refuses the upgrade: its status, fields and body reach the client', { timeout: 20000 }, async () => {
  const refused = await openWebSocket(url('/ws/refuse')).then(
    (ws) => { ws.close(); return { status: 101 }; }, (e) => e);
  assert.equal(refused.status, 403);
  assert.equal(refused.headers['x-refused-by'], 'backend');
  assert.equal(refused.body, 'no entry for you\n');
  await assertAliveHere();
});

test('an exact WebSocket route beats the prefix; http:// backends relay upgrades; ws:// ones only upgrades', { timeout: 20000 }, async () => {
  const own = await openWebSocket(url('/ws/wsb-echo'));
  own.send('mine');
  assert.equal((await nthMessage(own, 0)).data.toString(), 'wsbridge echo: mine');
  own.close();
  const mixed = await openWebSocket(url('/mixed/echo'));
  mixed.send('through http://');
  assert.equal((await nthMessage(mixed, 0)).data.toString(), 'through http://');
  mixed.close();
  const plain = await httpRequest(bridge.port, 'GET', '/ws/echo');
  assert.equal(plain.status, 404, 'a plain request under a ws:// backend');
  const off = await openWebSocket(url('/no-ws/echo')).then(
    (ws) => { ws.close(); return { status: 101 }; }, (e) => e);
  assert.notEqual(off.status, 101, 'websocket = false relayed an upgrade');
});

test('websocket_idle_timeout closes a silent tunnel, not a busy one', { timeout: 20000 }, async () => {
  const busy = await openWebSocket(url('/ws-idle/echo'));
  const silent = await openWebSocket(url('/ws-idle/echo'));
  const opened = Date.now();
  let n = 0;
  const timer = setInterval(() => busy.send(`tick ${n++}`), 300);
  try {
    const closed = await within(silent.closed, 6000, 'the silent tunnel to close');
    const took = Date.now() - opened;
    assert.ok(took >= 900, `closed after ${took} ms with websocket_idle_timeout = "1s"`);
    console.log(`silent tunnel closed after ${took} ms: ${closed.code} ${closed.reason}`);
    await waitFor(() => /proxy: tunnel close remote=\S+ path=\/ws-idle\/echo by=wsbridge \(websocket_idle_timeout\) duration=1\.\d+s bytes_up=0 bytes_down=0/.test(bridge.log),
      'the access-log line of the tunnel closed as idle', 3000);
    await sleep(1500);
    assert.equal(busy.readyState, busy.OPEN, 'the busy tunnel was closed as idle');
    assert.ok(busy.received.length >= 5, 'the busy tunnel\'s echoes');
  } finally {
    clearInterval(timer);
    busy.close();
  }
});

test('the prefix\'s allowed_origins on relayed upgrades', { timeout: 20000 }, async () => {
  const evil = await openWebSocket(url('/ws-origin/echo'), { headers: { Origin: 'http://evil.example' } }).then(
    (ws) => { ws.close(); return { status: 101 }; }, (e) => e);
  assert.equal(evil.status, 403);
  const good = await openWebSocket(url('/ws-origin/echo'), { headers: { Origin: 'http://good.example' } });
  good.send('from a good origin');
  assert.equal((await nthMessage(good, 0)).data.toString(), 'from a good origin');
  good.close();
});

async function assertAliveHere() {
  const res = await httpRequest(bridge.port, 'GET', '/healthz');
  assert.equal(res.status, 200);
  assert.ok(bridge.running);
}

const FLOOD = 160;  // 1 MiB messages: more than every socket buffer on the way holds

test('a backend that stops reading: wsbridge stops reading the client, memory bounded, nothing lost', { timeout: 60000 }, async () => {
  const mark = backend.mark();
  const probe = new RssProbe(bridge.pid).start();
  try {
    const ws = await openWebSocket(url('/ws/stall?ms=7000'));
    const { opened, before, afterwards, closedEarly } = await floodStalledBackend(ws, FLOOD, 2500, 1000);
    const growth = probe.growth;
    assert.ok(Date.now() - opened < 6500, 'the samples were not taken while the backend stalled');
    assert.equal(backend.lines('STALL', mark).length, 0);
    console.log(`stalled backend: client bufferedAmount ${mib(before)} -> ${mib(afterwards)}, wsbridge RSS +${mib(growth)}`);
    if (closedEarly !== undefined) {
      const tail = (text) => text.trim().split('\n').slice(-12).join('\n');
      console.log(`wsbridge log:\n${tail(bridge.log)}\nbackend log:\n${tail(backend.child.output ?? '')}`);
    }
    assert.equal(closedEarly, undefined, 'the tunnel to a stalled backend ended');
    assert.ok(afterwards >= 32 * MiB, `the client could hand over all but ${mib(afterwards)} of ${FLOOD} MiB: ` +
      'wsbridge kept reading from it while the backend read nothing');
    assert.ok(before - afterwards < 2 * MiB, `the flood kept moving (${mib(before)} -> ${mib(afterwards)}) while the backend read nothing`);
    assertBoundedGrowth(assert, { ...probe, growth }, 'while the backend read nothing');
    // The backend reads again: everything arrives, in order.
    const report = await stalledBackendReport(ws);
    assert.equal(report.messages, FLOOD);
    assert.equal(report.bytes, FLOOD * MiB);
    assert.equal(report.sha256, streamHash(FLOOD * MiB), 'the flood arrived altered');
    ws.close();
  } finally {
    const memory = probe.stop();
    console.log(`  wsbridge RSS ${mib(memory.baseline)} -> peak ${mib(memory.peak)}`);
    assertBoundedGrowth(assert, memory, 'a flood to a stalled backend');
  }
});

test('a client that stops reading: wsbridge stops reading the backend, memory bounded, nothing lost', { timeout: 60000 }, async () => {
  const mark = backend.mark();
  const probe = new RssProbe(bridge.pid).start();
  const hash = createHash('sha256');
  let count = 0;
  let ended = false;
  let bad;
  try {
    const ws = await openWebSocket(url(`/ws/flood?count=${FLOOD}`), {
      onMessage: (data, binary) => {
        if (!binary) { ended = data.toString() === 'end'; return; }
        if (data.length !== MiB || data.readBigUInt64BE(0) !== BigInt(count)) bad ??= `message ${count}`;
        hash.update(data);
        count += 1;
      },
    });
    ws.pause();
    const sent = () => Math.max(0, ...backend.lines('FLOOD', mark).map((l) => Number(l[2])));
    await sleep(3000);
    const before = sent();
    await sleep(1000);
    const afterwards = sent();
    const growth = probe.growth;
    console.log(`paused client: backend sent ${before} -> ${afterwards} messages, client got ${count}, wsbridge RSS +${mib(growth)}`);
    assert.ok(afterwards < FLOOD, 'the backend could send the whole flood to a client that read nothing');
    assert.ok(afterwards - before <= 1, `the backend kept sending (${before} -> ${afterwards}) to a client that read nothing`);
    assertBoundedGrowth(assert, { ...probe, growth }, 'while the client read nothing');
    ws.resume();
    await waitFor(() => ended, 'the end of the flood', 30000);
    assert.equal(bad, undefined, `${bad} came out of order or altered`);
    assert.equal(count, FLOOD);
    assert.equal(hash.digest('hex'), streamHash(FLOOD * MiB));
    ws.close();
  } finally {
    const memory = probe.stop();
    console.log(`  wsbridge RSS ${mib(memory.baseline)} -> peak ${mib(memory.peak)}`);
    assertBoundedGrowth(assert, memory, 'a flood to a paused client');
  }
});
