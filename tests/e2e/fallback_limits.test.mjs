// The HTTP fallback transports' connections and limits against a real wsbridge (#16,
// docs/FALLBACK.md): lws' request timeout bounds a request's head and body, never a response a
// session holds open; POSTs in flight are bounded per session and in bytes per service thread;
// what sessions no request carries hold is bounded together ([limits] unread_output_bytes); an
// event stream on a keep-alive connection comes in chunks, so the next one reuses it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { Bridge, freePort, tempDir, removeDir, sleep } from './mqtt_passthrough_support.mjs';
import { request, SseStream, encodeBody, decodeBody } from './fallback_support.mjs';

let dir;
let bridge;
let port;

before(async () => {
  dir = tempDir();
  port = await freePort();
  // One service thread: every POST counts against the same share of post_bytes_in_flight.
  bridge = new Bridge(dir, port, `
[limits]
handshake_timeout = "2s"
unread_output_bytes = "64KiB"
[fallback]
heartbeat = "1s"
poll_timeout = "4s"
max_post_bytes = "4KiB"
post_bytes_in_flight = "8KiB"
sse_byte_limit = "4KiB"
[[listeners]]
address = "127.0.0.1"
port = ${port}
[[routes]]
path = "/echo"
adapter = "echo"
max_queued_bytes = "64KiB"
`, { threads: 1 });
  await bridge.start();
});

after(async () => {
  if (process.env.FALLBACK_LOG) console.log(bridge?.log);
  await bridge?.stop();
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
  assert.match(bridge.log, /fallback POST from 127\.0\.0\.1 refused: the POSTs in flight hold 6000 bytes/);
  assert.equal(first.closed || second.closed, false, 'the POSTs within the budget go on');
  // The held bytes are given back when their connections go: a 3 KB POST fits again.
  first.socket.destroy();
  second.socket.destroy();
  await sleep(300);
  const big = await request(port, 'POST', sendUrl(a),
    { body: encodeBody(1, [{ payload: 'y'.repeat(3000) }]), headers: { 'content-type': 'text/plain' } });
  assert.equal(big.status, 200, big.body.toString());
});

test('sessions no request carries are bounded together: past unread_output_bytes the largest are closed (1013), told at their next request', async () => {
  // Four sessions, each with 21 KB of echoes that nothing carries (their client vanished, say),
  // under the route's high-water mark (32 KiB: none is paused), 84 KB together against 64 KiB
  // for the thread: one or two go, and what they held with them.
  const tokens = [];
  for (let i = 0; i < 4; ++i) tokens.push(await openSession());
  for (const token of tokens) {
    for (let seq = 1; seq <= 7; ++seq) {
      await request(port, 'POST', sendUrl(token), { body: encodeBody(seq, [{ payload: `${seq}`.repeat(3000) }]),
        headers: { 'content-type': 'text/plain' } });
    }
  }
  await sleep(1500);  // (the bound is checked on the server's timer tick, every second here)
  let closed = 0;
  let whole = 0;
  for (const token of tokens) {
    const polled = await request(port, 'GET', `/_wsbridge/poll/echo?s=${encodeURIComponent(token)}&last=0`);
    assert.equal(polled.status, 200, polled.body.toString());
    const { records } = decodeBody(polled.body);
    const close = records.filter((r) => r.kind === 'c').map((r) => JSON.parse(r.payload))
      .find((c) => c.type === 'close');
    if (close) {
      assert.deepEqual(close, { type: 'close', code: 1013, reason: 'not reading' });
      ++closed;
    } else {
      const echoes = records.filter((r) => r.kind === 't').map((r) => r.payload.toString());
      assert.deepEqual(echoes, Array.from({ length: 7 }, (_, i) => `${i + 1}`.repeat(3000)));
      ++whole;
    }
  }
  assert.ok(closed >= 1, `closed ${closed} of 4`);
  assert.ok(whole >= 1, 'one session at its own bound always fits');
  assert.match(bridge.log, /closed with 1013: it reads nothing of its \d+ queued bytes.*\[limits\] unread_output_bytes/);
});

// Waits until `state.data` (a raw connection's bytes) satisfies `check`.
async function until(state, check, what) {
  const deadline = Date.now() + 5000;
  while (!check(state.data)) {
    if (Date.now() > deadline || state.closed) throw new Error(`${what}: ${JSON.stringify(state.data)}`);
    await sleep(20);
  }
}

// One response in `text` (a connection's bytes from a response's start): its head and its body,
// de-chunked if it came in chunks; `complete` once its end arrived.
function readResponse(text) {
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const head = text.slice(0, headEnd).toLowerCase();
  let rest = text.slice(headEnd + 4);
  if (!head.includes('transfer-encoding: chunked')) return { head, body: rest, complete: false, rest: '' };
  let body = '';
  for (;;) {
    const eol = rest.indexOf('\r\n');
    if (eol < 0) return { head, body, complete: false, rest: '' };
    const size = parseInt(rest.slice(0, eol), 16);
    if (rest.length < eol + 2 + size + 2) return { head, body, complete: false, rest: '' };
    assert.equal(rest.slice(eol + 2 + size, eol + 4 + size), '\r\n', 'a chunk ends with CRLF');
    body += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 4 + size);
    if (size === 0) return { head, body, complete: true, rest };
  }
}

test('an event stream on a keep-alive connection comes in chunks; the next one reuses the connection', async () => {
  const conn = rawRequest('GET /_wsbridge/sse/echo HTTP/1.1\r\nHost: x\r\n\r\n');
  await until(conn, (d) => /"type":"welcome"/.test(d), 'the welcome');
  const first = readResponse(conn.data);
  assert.match(first.head, /^http\/1\.1 200/);
  assert.match(first.head, /transfer-encoding: chunked/);
  assert.doesNotMatch(first.head, /connection: close/);
  const token = JSON.parse(/data: (\{.*"type":"welcome".*\})/.exec(first.body)[1]).session;
  // Echoed messages past sse_byte_limit (4 KiB) end the stream with "reconnect".
  // (Two POSTs: max_post_bytes is 4 KiB here.)
  for (const first of [1, 4]) {
    const records = [0, 1, 2].map((i) => ({ payload: `${first + i}`.repeat(1000) }));
    const posted = await request(port, 'POST', sendUrl(token),
      { body: encodeBody(first, records), headers: { 'content-type': 'text/plain' } });
    assert.equal(posted.status, 200);
  }
  await until(conn, (d) => readResponse(d)?.complete, 'the end of the stream');
  const ended = readResponse(conn.data);
  assert.match(ended.body, /"type":"reconnect"/);
  const ids = [...ended.body.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
  const last = Math.max(...ids);
  assert.ok(last >= 4, `messages before the end: ${ids}`);
  assert.equal(ended.rest, '', 'nothing after the last chunk');
  assert.equal(conn.closed, false, 'the connection stays for the next stream');
  // The next stream, on the same connection, from the last id.
  conn.data = '';
  conn.socket.write(`GET /_wsbridge/sse/echo?s=${encodeURIComponent(token)}&last=${last} HTTP/1.1\r\nHost: x\r\n\r\n`);
  await until(conn, (d) => /"type":"welcome"/.test(d) && (last >= 6 || /^id: 6$/m.test(readResponse(d)?.body ?? '')),
    'the next stream');
  const next = readResponse(conn.data);
  assert.match(next.head, /^http\/1\.1 200/);
  assert.match(next.body, /"last":\d+/);
  conn.socket.destroy();
});

test('an event stream to HTTP/1.0 or with "Connection: close" ends with its connection, not in chunks', async () => {
  for (const request of ['GET /_wsbridge/sse/echo HTTP/1.0\r\n\r\n',
    'GET /_wsbridge/sse/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']) {
    const conn = rawRequest(request);
    await until(conn, (d) => /"type":"welcome"/.test(d), 'the welcome');
    const head = conn.data.slice(0, conn.data.indexOf('\r\n\r\n')).toLowerCase();
    assert.doesNotMatch(head, /transfer-encoding/, request);
    assert.match(head, /connection: close/, request);
    assert.match(conn.data, /\r\n\r\nid: 0\nevent: control\ndata: \{/, 'the events themselves follow the head');
    conn.socket.destroy();
  }
});

// The state of wsbridge's side of a loopback TCP connection, from /proc/net/tcp: "01" while it
// is established, another state once wsbridge closed it (FIN_WAIT1 with bytes still unsent),
// null when it is gone.
function serverSocketState(serverPort, clientPort) {
  const hex = (p) => `0100007F:${p.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === hex(serverPort) && f[2] === hex(clientPort)) return f[3];
  }
  return null;
}

test('with two service threads: an ended session\'s event stream its client stopped reading is dropped after handshake_timeout, and 4 POSTs per session are counted across the threads', async () => {
  const dir2 = tempDir();
  const port2 = await freePort();
  const bridge2 = new Bridge(dir2, port2, `
[limits]
handshake_timeout = "2s"
[fallback]
sse_byte_limit = "1GiB"
[[listeners]]
address = "127.0.0.1"
port = ${port2}
[[routes]]
path = "/echo"
adapter = "echo"
max_queued_bytes = "1MiB"
ping_interval = "1s"
idle_timeout = "3s"
`, { threads: 2 });
  await bridge2.start();
  try {
    // A client that stops reading its stream: echoes of 200 KB fill the socket, the channel and
    // the session's queue; paused then, and taking nothing, the session is closed at its
    // idle_timeout. The stream's end cannot be written.
    const sse = new SseStream(port2, '/_wsbridge/sse/echo');
    await sse.opened;
    await sse.until((events) => events.length > 0, 5000, 'the welcome');
    const token = sse.controls[0].session;
    sse.res.pause();
    const clientPort = sse.req.socket.localPort;
    const post = (seq, payload) => request(port2, 'POST',
      `/_wsbridge/send/echo?s=${encodeURIComponent(token)}`,
      { body: encodeBody(seq, [{ payload }]), headers: { 'content-type': 'text/plain' } });
    let ended = false;
    for (let seq = 1; seq <= 300 && !ended; ++seq) {
      const answer = await post(seq, 'e'.repeat(200000));
      ended = answer.status === 410;
      if (!ended) assert.equal(answer.status, 200, answer.body.toString());
    }
    assert.ok(ended, 'the session was closed for not reading');
    const t0 = Date.now();
    while (serverSocketState(port2, clientPort) === '01' && Date.now() - t0 < 6000) await sleep(100);
    const state = serverSocketState(port2, clientPort);
    assert.notEqual(state, '01', `wsbridge still holds the stream ${Date.now() - t0} ms later`);
    sse.close();

    // Twelve POSTs of one session, each on its own connection (spread over both threads by the
    // kernel), their bodies still arriving: four are taken, eight refused with 429.
    const opened = await request(port2, 'GET', '/_wsbridge/poll/echo');
    const session = JSON.parse(decodeBody(opened.body).records[0].payload).session;
    const held = [];
    for (let i = 0; i < 12; ++i) {
      const socket = net.connect(port2, '127.0.0.1');
      const state2 = { socket, data: '' };
      socket.on('data', (d) => { state2.data += d.toString('latin1'); });
      socket.on('error', () => {});
      socket.write(`POST /_wsbridge/send/echo?s=${encodeURIComponent(session)} HTTP/1.1\r\n` +
        'Host: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n1\n');
      held.push(state2);
    }
    const refusedNow = () => held.filter((h) => h.data.startsWith('HTTP/1.1 429')).length;
    for (const t1 = Date.now(); refusedNow() < 8 && Date.now() - t1 < 5000;) await sleep(50);
    await sleep(200);  // (no more than 8)
    const refused = refusedNow();
    const waiting = held.filter((h) => h.data === '').length;
    assert.deepEqual({ refused, waiting }, { refused: 8, waiting: 4 },
      held.map((h) => h.data.split('\r\n')[0]).join(', '));
    for (const h of held) h.socket.destroy();
  } finally {
    await bridge2.stop();
    removeDir(dir2);
  }
});
