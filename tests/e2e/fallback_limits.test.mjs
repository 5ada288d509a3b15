// The limits of the HTTP fallback transports' requests against a real wsbridge (#16,
// docs/FALLBACK.md): lws' request timeout bounds a request's head and body, never a response a
// session holds open; POSTs in flight are bounded per session and in bytes per service thread.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Child, freePort, tempDir, removeDir, sleep, sourceDir, waitFor } from './mqtt_passthrough_support.mjs';
import { request, SseStream, encodeBody, decodeBody } from './fallback_support.mjs';

let dir;
let child;
let port;

before(async () => {
  dir = tempDir();
  port = await freePort();
  const config = path.join(dir, 'wsbridge.toml');
  // One service thread: every POST counts against the same share of post_bytes_in_flight.
  writeFileSync(config, `[server]
threads = 1
shutdown_timeout = "1s"
[limits]
handshake_timeout = "2s"
[fallback]
heartbeat = "1s"
poll_timeout = "4s"
max_post_bytes = "4KiB"
post_bytes_in_flight = "8KiB"
[[listeners]]
address = "127.0.0.1"
port = ${port}
[[routes]]
path = "/echo"
adapter = "echo"
`);
  child = new Child(process.env.WSBRIDGE_BINARY ?? path.join(sourceDir, 'build', 'release', 'wsbridge'),
    ['--config', config]);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.ok, 'wsbridge');
});

after(async () => {
  if (process.env.FALLBACK_LOG) console.log(child?.output);
  await child?.stop();
  if (dir) removeDir(dir);
});

async function openSession() {
  const opened = await request(port, 'GET', '/_wsbridge/poll/echo');
  assert.equal(opened.status, 200);
  return JSON.parse(decodeBody(opened.body).records[0].payload).session;
}

const sendUrl = (token) => `/_wsbridge/send/echo?s=${encodeURIComponent(token)}`;

// A connection that sends `text` and then waits: what comes back, and when it closes.
function rawRequest(text) {
  const socket = net.connect(port, '127.0.0.1');
  const state = { socket, data: '', closed: false };
  socket.on('data', (d) => { state.data += d.toString('latin1'); });
  socket.on('error', () => {});
  state.closedAt = new Promise((resolve) => socket.on('close', () => {
    state.closed = true;
    resolve(Date.now());
  }));
  socket.write(text);
  return state;
}

// A POST whose head and `sent` bytes of a `length`-byte body arrive, and nothing more.
const partialPost = (token, length, sent) => rawRequest(`POST ${sendUrl(token)} HTTP/1.1\r\n` +
  `Host: x\r\nContent-Type: text/plain\r\nContent-Length: ${length}\r\n\r\n${'1'.repeat(sent)}`);

test('streams and held polls outlive handshake_timeout; unfinished heads and bodies do not', async () => {
  const sse = new SseStream(port, '/_wsbridge/sse/echo');
  await sse.opened;
  assert.equal(sse.status, 200);
  const tok = encodeURIComponent(await openSession());
  const t0 = Date.now();
  const polled = await request(port, 'GET', `/_wsbridge/poll/echo?s=${tok}&last=0`);
  const waited = Date.now() - t0;
  assert.equal(polled.status, 200);
  assert.deepEqual(decodeBody(polled.body), { first: 1, records: [] }, 'answered empty');
  assert.ok(waited >= 3500, `the poll was held for poll_timeout, not cut: ${waited} ms`);
  assert.equal(sse.ended, false, 'the stream is still open after twice the timeout');
  assert.ok((sse.comments ?? 0) >= 3, `heartbeats: ${sse.comments}`);
  sse.close();
  const head = rawRequest('GET /_wsbridge/poll/echo HTTP/1.1\r\nHost: x\r\n');
  const body = partialPost(await openSession(), 100, 2);
  const started = Date.now();
  const [headClosed, bodyClosed] = await Promise.all([head.closedAt, body.closedAt]);
  assert.ok(headClosed - started < 5000, `a head never finished is dropped: ${headClosed - started} ms`);
  assert.ok(bodyClosed - started < 5000, `a body never finished is dropped: ${bodyClosed - started} ms`);
});

test('a session has at most 4 POSTs in flight: the fifth gets 429; a closed one gives its place back', async () => {
  const token = await openSession();
  const held = [];
  for (let i = 0; i < 4; ++i) held.push(partialPost(token, 100, 10));
  await sleep(300);
  const fifth = await request(port, 'POST', sendUrl(token),
    { body: encodeBody(1, [{ payload: 'x' }]), headers: { 'content-type': 'text/plain' } });
  assert.equal(fifth.status, 429);
  assert.equal(fifth.headers['retry-after'], '1');
  assert.equal(JSON.parse(fifth.body).error, 'busy');
  held.pop().socket.destroy();
  await sleep(300);
  const again = await request(port, 'POST', sendUrl(token),
    { body: encodeBody(1, [{ payload: 'x' }]), headers: { 'content-type': 'text/plain' } });
  assert.equal(again.status, 200, again.body.toString());
  for (const h of held) h.socket.destroy();
});

test('POST bodies held at once are bounded: past post_bytes_in_flight a POST gets 503 and is closed', async () => {
  const a = await openSession();
  const b = await openSession();
  const first = partialPost(a, 4000, 3000);
  const second = partialPost(b, 4000, 3000);
  await sleep(300);
  assert.equal(first.closed || second.closed, false, 'within the budget');
  const third = partialPost(a, 4000, 3000);  // 9,000 bytes held: over 8 KiB
  await third.closedAt;
  assert.match(third.data, /^HTTP\/1\.1 503/, third.data);
  assert.match(third.data, /"error":"overloaded"/);
  assert.match(child.output, /fallback POST from 127\.0\.0\.1 refused: the POSTs in flight hold 6000 bytes/);
  assert.equal(first.closed || second.closed, false, 'the POSTs within the budget go on');
  // The held bytes are given back when their connections go: a 3 KB POST fits again.
  first.socket.destroy();
  second.socket.destroy();
  await sleep(300);
  const big = await request(port, 'POST', sendUrl(a),
    { body: encodeBody(1, [{ payload: 'y'.repeat(3000) }]), headers: { 'content-type': 'text/plain' } });
  assert.equal(big.status, 200, big.body.toString());
});
