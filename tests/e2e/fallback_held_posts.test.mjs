// POSTs and the route's flow control against a real wsbridge (#16, docs/FALLBACK.md, "Upstream:
// POST"): a POST whose session's reading is paused is held, unanswered; one held whose client
// left is let go, never applied; held ones are told why when their session ends or moves to a
// WebSocket; and a POST stops applying its records where the route pauses the session. Also a
// session whose token expires: closed, told on its stream or next poll.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import WebSocket from 'ws';
import { Bridge, freePort, tempDir, removeDir, sleep, waitFor } from './mqtt_passthrough_support.mjs';
import { request, encodeBody, decodeBody } from './fallback_support.mjs';

let dir;
let bridge;
let port;
let backend;
const unanswered = []; // the backend's requests, never answered

before(async () => {
  dir = tempDir();
  port = await freePort();
  backend = http.createServer((req, res) => { req.resume(); unanswered.push(res); });
  await new Promise((resolve) => backend.listen(0, '127.0.0.1', resolve));
  bridge = new Bridge(dir, port, `
[fallback]
heartbeat = "1s"
poll_timeout = "1s"
reconnect_window = "2s"
token_lifetime = "10s"
[[listeners]]
address = "127.0.0.1"
port = ${port}
[[routes]]
path = "/small-queue"
adapter = "echo"
max_queued_bytes = "1KiB"
[[routes]]
path = "/withdrawn"
adapter = "echo"
[[routes]]
path = "/hole"
adapter = "http"
backend = "http://127.0.0.1:${backend.address().port}/x"
timeout = "60s"
`, { threads: 1 });
  await bridge.start();
});

after(async () => {
  if (process.env.FALLBACK_LOG) console.log(bridge?.log);
  await bridge?.stop();
  for (const res of unanswered) res.destroy();
  backend?.close();
  if (dir) removeDir(dir);
});

// (`at`: another wsbridge's port than the file's.)
async function openPollSession(route, at = port) {
  const opened = await request(at, 'GET', `/_wsbridge/poll${route}`);
  assert.equal(opened.status, 200);
  return JSON.parse(decodeBody(opened.body).records[0].payload).session;
}

const sendUrl = (route, token) => `/_wsbridge/send${route}?s=${encodeURIComponent(token)}`;
const pollUrl = (route, token, last) => `/_wsbridge/poll${route}?s=${encodeURIComponent(token)}&last=${last}`;
const post = (route, token, first, records, at = port) => request(at, 'POST', sendUrl(route, token),
  { body: encodeBody(first, records), headers: { 'content-type': 'text/plain' } });

// A POST on a connection of its own, not waited for: what comes back, and the socket.
function rawPost(route, token, first, records, at = port) {
  const body = encodeBody(first, records);
  const socket = net.connect(at, '127.0.0.1');
  const state = { socket, data: '' };
  socket.on('data', (d) => { state.data += d.toString('latin1'); });
  socket.on('error', () => {});
  socket.write(`POST ${sendUrl(route, token)} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n` +
    `Content-Length: ${body.length}\r\n\r\n`);
  socket.write(body);
  return state;
}

// A session of /small-queue whose reading is paused: its echo waits (over the 1 KiB queue's
// high water, 512 bytes) and nothing polls. Its next record is 2.
async function pausedSession(at = port) {
  const token = await openPollSession('/small-queue', at);
  const first = await post('/small-queue', token, 1, [{ payload: 'a'.repeat(700) }], at);
  assert.equal(first.status, 200, first.body.toString());
  assert.deepEqual(JSON.parse(first.body), { next: 2 });
  await sleep(100);
  return token;
}

test('a held POST whose client left is let go, not applied when reading resumes', async () => {
  const token = await pausedSession();
  const held = rawPost('/small-queue', token, 2, [{ payload: 'abandoned' }]);
  await sleep(300);
  assert.equal(held.data, '', 'held while reading is paused');
  held.socket.destroy();
  await sleep(300);
  // The client polls: the echoes go, reading resumes. The POST its client gave up is not applied
  // (nobody learns it was: the client sends it again, and that one is).
  const polled = decodeBody((await request(port, 'GET', pollUrl('/small-queue', token, 0))).body);
  assert.deepEqual(polled.records.map((r) => r.payload.length), [700]);
  await sleep(200);
  const again = await post('/small-queue', token, 2, [{ payload: 'sent again' }]);
  assert.equal(again.status, 200, again.body.toString());
  assert.deepEqual(JSON.parse(again.body), { next: 3 });
  const echoes = decodeBody((await request(port, 'GET', pollUrl('/small-queue', token, 1))).body);
  assert.deepEqual(echoes.records.map((r) => r.payload.toString()), ['sent again']);
});

test('held POSTs are told the close when their session ends (410 with the close), unapplied', async () => {
  const token = await pausedSession();
  const held = rawPost('/small-queue', token, 2, [{ payload: 'waits' }]);
  // Nothing carries the session: it ends after reconnect_window (2 s).
  for (let i = 0; i < 50 && !held.data.includes('\r\n\r\n{'); ++i) await sleep(100);
  const [head, body] = held.data.split('\r\n\r\n');
  assert.match(head, /^HTTP\/1\.1 410/, held.data);
  assert.deepEqual(JSON.parse(body), { type: 'close', code: 1001, reason: 'the session ended' });
  held.socket.destroy();
});

test('held POSTs are told the session moved when it moves to a WebSocket (404), unapplied', async () => {
  const token = await pausedSession();
  const held = rawPost('/small-queue', token, 2, [{ payload: 'held at the move' }]);
  await sleep(300);
  assert.equal(held.data, '');
  const ws = new WebSocket(`ws://127.0.0.1:${port}/small-queue?_wsb=resume&s=${encodeURIComponent(token)}&last=0`);
  const got = [];
  ws.on('message', (m) => got.push(m.toString()));
  await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
  for (let i = 0; i < 30 && !held.data.includes('\r\n\r\n{'); ++i) await sleep(100);
  const [head, body] = held.data.split('\r\n\r\n');
  assert.match(head, /^HTTP\/1\.1 404/, held.data);
  assert.equal(JSON.parse(body).error, 'moved');
  await sleep(300);
  assert.ok(!got.some((m) => m.includes('held at the move')), 'not applied');
  ws.close();
  held.socket.destroy();
});

test('a POST stops applying its records where the route pauses the session, and says where', async () => {
  const token = await openPollSession('/hole');
  // 1,000 requests to a backend that never answers: the http route pauses past max_queued (64).
  const records = Array.from({ length: 1000 }, (_, i) => ({
    payload: JSON.stringify({ id: i, method: 'GET', path: '/x' }),
  }));
  const res = await post('/hole', token, 1, records);
  assert.equal(res.status, 200, res.body.toString());
  const { next } = JSON.parse(res.body);
  assert.ok(next > 1 && next < 200, `applied up to the pause, not all 1,000: next ${next}`);
  // The rest, sent again from `next`, waits: reading is paused.
  const rest = rawPost('/hole', token, next, records.slice(next - 1));
  await sleep(300);
  assert.equal(rest.data, '', 'held while the route is paused');
  rest.socket.destroy();
});

// Past token_lifetime no request can name the session: it is closed just before (1001, so the
// client opens a new one), after what was queued for it. (Its POSTs got 404 while its stream went on, until it
// was cut off with its queue.)
test('a session whose token expires is closed, its close carried like any other', async () => {
  const started = Date.now();
  const token = await openPollSession('/small-queue');
  assert.equal((await post('/small-queue', token, 1, [{ payload: 'before' }])).status, 200);
  let last = 0;
  const got = [];
  let close = null;
  while (!close && Date.now() - started < 20000) {
    const res = await request(port, 'GET', pollUrl('/small-queue', token, last));
    assert.equal(res.status, 200, res.body.toString());
    const body = decodeBody(res.body);
    for (const r of body.records) {
      if (r.kind === 'c') {
        const control = JSON.parse(r.payload);
        if (control.type === 'close') close = control;
      } else {
        got.push(r.payload.toString());
        last = body.first + got.length - 1;
      }
    }
  }
  assert.deepEqual(close, { type: 'close', code: 1001, reason: "the session's token expired: open a new session" });
  // (5 s before the token expires: the close must reach the client while its token still names
  // the session.)
  const at = Date.now() - started;
  assert.ok(at >= 4500 && at < 10000, `closed shortly before token_lifetime: ${at} ms`);
  assert.deepEqual(got, ['before']);
});

// A reload that takes a route's fallbacks away (`fallback = false`; [fallback] off, or the route
// gone, likewise): its open sessions are closed with 1012 as at a restart, told on their next
// poll or their stream, and the client reconnects under the new configuration. Their POSTs get
// 404, as any request of a route without fallbacks. (They lived on half alive: every poll and
// POST got 404 not_found while the session stayed open, and nothing told the client.)
test("a reload that takes a route's fallbacks away closes its sessions with 1012, told on their next poll", async () => {
  const token = await openPollSession('/withdrawn');
  const original = readFileSync(bridge.config, 'utf8');
  const withdrawn = original.replace('path = "/withdrawn"\nadapter = "echo"\n',
    'path = "/withdrawn"\nadapter = "echo"\nfallback = false\n');
  assert.notEqual(withdrawn, original);
  const reloads = () => (bridge.log.match(/configuration reloaded/g) ?? []).length;
  const reload = async (text) => {
    const before = reloads();
    writeFileSync(bridge.config, text);
    bridge.child.proc.kill('SIGHUP');
    await waitFor(() => reloads() > before, 'the reload');
  };
  await reload(withdrawn);
  try {
    const posted = await post('/withdrawn', token, 1, [{ payload: 'after' }]);
    assert.equal(posted.status, 404, posted.body.toString());
    const polled = await request(port, 'GET', pollUrl('/withdrawn', token, 1));
    assert.equal(polled.status, 200, polled.body.toString());
    const controls = decodeBody(polled.body).records.filter((r) => r.kind === 'c')
      .map((r) => JSON.parse(r.payload));
    assert.equal(controls.length, 1, JSON.stringify(controls));
    assert.equal(controls[0].type, 'close');
    assert.equal(controls[0].code, 1012);
    assert.match(controls[0].reason, /^service restart; retry_ms=\d+$/);
    // Told once: the session is gone, and a new one cannot open on this route.
    assert.equal((await request(port, 'GET', pollUrl('/withdrawn', token, 1))).status, 404);
    assert.equal((await request(port, 'GET', '/_wsbridge/poll/withdrawn')).status, 404);
  } finally {
    await reload(original);
  }
});

// At shutdown every held POST is told the 1012 close (410), on whichever service thread its
// connection landed. A POST held on another thread than its session's got no answer at all:
// that thread, with no session of its own, finished shutting down before the session's thread
// sent it the close. Six sessions with two threads: some POSTs land on the other thread.
test('at shutdown, held POSTs on every service thread are told the 1012 close (410)', async () => {
  const ownDir = tempDir();
  const ownPort = await freePort();
  const own = new Bridge(ownDir, ownPort, `
[fallback]
poll_timeout = "1s"
[[listeners]]
address = "127.0.0.1"
port = ${ownPort}
[[routes]]
path = "/small-queue"
adapter = "echo"
max_queued_bytes = "1KiB"
`, { threads: 2 });
  await own.start();
  const held = [];
  try {
    for (let i = 0; i < 6; i++) {
      const token = await pausedSession(ownPort);
      held.push(rawPost('/small-queue', token, 2, [{ payload: `held ${i}` }], ownPort));
    }
    await sleep(300);
    assert.deepEqual(held.map((h) => h.data), Array(6).fill(''), 'held while reading is paused');
    await own.stop();
    for (const [i, h] of held.entries()) {
      for (let n = 0; n < 20 && !h.data.includes('\r\n\r\n{'); ++n) await sleep(50);
      const [head, body] = h.data.split('\r\n\r\n');
      assert.match(head ?? '', /^HTTP\/1\.1 410/, `POST ${i}: ${JSON.stringify(h.data)}`);
      const close = JSON.parse(body);
      assert.equal(close.code, 1012, body);
      assert.match(close.reason, /^service restart; retry_ms=\d+$/);
    }
  } finally {
    for (const h of held) h.socket.destroy();
    await own.stop();
    removeDir(ownDir);
  }
});
