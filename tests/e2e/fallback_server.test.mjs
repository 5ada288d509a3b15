// The HTTP fallback transports against a real wsbridge (#16, docs/FALLBACK.md): SSE and
// long-polling down, POST up, tokens, ids and resume, the byte limit, sequence numbers, closes
// kept for the next request, CORS and Origin, credentials, the WebSocket welcome, and sessions
// spread over two service threads (each request may land on either).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import WebSocket from 'ws';
import {
  Bridge, Child, freePort, tempDir, removeDir, sleep, sourceDir, token, waitFor, AUTH_TABLES,
} from './mqtt_passthrough_support.mjs';
import { request, json, SseStream, encodeBody, decodeBody } from './fallback_support.mjs';

let dir;
let bridge;
let port;
let adminPort;
let backend;
const admissions = [];

// An HTTP backend for an http route: its on_connect hook admits a client whose cookie says
// "let-me-in" (and adds a claim), and message mode gets each message back upper-cased.
function startBackend() {
  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        if (req.url === '/connect') {
          const hook = JSON.parse(body);
          admissions.push(hook);
          const cookie = hook.headers.cookie ?? hook.headers.Cookie ?? '';
          if (!String(cookie).includes('let-me-in')) {
            res.writeHead(403, { 'content-type': 'text/plain' }).end('no cookie, no entry');
          } else {
            res.writeHead(200, { 'content-type': 'application/json' })
              .end(JSON.stringify({ claims: { plan: 'gold' } }));
          }
          return;
        }
        res.writeHead(200, { 'content-type': 'text/plain' }).end(body.toUpperCase());
      });
    });
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

before(async () => {
  dir = tempDir();
  port = await freePort();
  adminPort = await freePort();
  backend = await startBackend();
  const backendUrl = `http://127.0.0.1:${backend.address().port}`;
  bridge = new Bridge(dir, port, `${AUTH_TABLES}
[fallback]
heartbeat = "1s"
poll_timeout = "2s"
reconnect_window = "4s"
sse_byte_limit = "4KiB"
resume_buffer_bytes = "2KiB"
[admin]
address = "127.0.0.1"
port = ${adminPort}
allow_api_without_token = true
[[listeners]]
address = "127.0.0.1"
port = ${port}
[[routes]]
path = "/echo"
adapter = "echo"
max_message_bytes = "64KiB"
[[routes]]
path = "/small-queue"
adapter = "echo"
max_queued_bytes = "1KiB"
[[routes]]
path = "/origins"
adapter = "echo"
[routes.auth]
allowed_origins = ["https://app.example"]
[[routes]]
path = "/private"
adapter = "echo"
[routes.auth]
jwt = "main"
required = true
[[routes]]
path = "/limited"
adapter = "echo"
rate = 2
burst = 2
[[routes]]
path = "/paced"
adapter = "echo"
max_queued_bytes = "64KiB"
[[routes]]
path = "/stalled"
adapter = "echo"
max_queued_bytes = "64KiB"
idle_timeout = "2s"
ping_interval = "1s"
[[routes]]
path = "/legacy"
adapter = "http"
backend = "${backendUrl}/messages"
on_connect = "${backendUrl}/connect"
[[routes]]
path = "/no-fallback"
adapter = "echo"
fallback = false
[[routes]]
path = "/chat"
adapter = "echo"
subprotocols = ["chat.v1"]
[[routes]]
path = "/other-protocol"
adapter = "echo"
subprotocols = ["other.v1"]
`);
  await bridge.start();
});

after(async () => {
  if (process.env.FALLBACK_LOG) console.log(bridge?.log);
  await bridge?.stop();
  backend?.close();
  if (dir) removeDir(dir);
});

async function openSse(route, query = '', headers = {}) {
  const stream = new SseStream(port, `/_wsbridge/sse${route}${query}`, headers);
  await stream.opened;
  if (stream.status !== 200) return stream;
  await stream.until((e) => e.length >= 1, 5000, 'the welcome');
  const welcome = stream.controls[0];
  assert.equal(welcome.type, 'welcome');
  stream.token = welcome.session;
  return stream;
}

const post = (route, tok, first, records) =>
  request(port, 'POST', `/_wsbridge/send${route}?s=${encodeURIComponent(tok)}`,
    { body: encodeBody(first, records), headers: { 'content-type': 'text/plain' } });

test('SSE: welcome first, headers against buffering, every kind of message echoed with its id', async () => {
  const sse = await openSse('/echo');
  assert.equal(sse.headers['content-type'], 'text/event-stream');
  assert.equal(sse.headers['cache-control'], 'no-store');
  assert.equal(sse.headers['x-accel-buffering'], 'no');
  const welcome = sse.controls[0];
  assert.equal(welcome.transport, 'sse');
  assert.equal(welcome.last, 0);
  assert.match(welcome.session, /^v3\.[A-Za-z0-9_-]+\.[0-9a-f]{16}\.\d+\.\d+\.[A-Za-z0-9_-]+$/);
  const binary = Buffer.from([0, 1, 2, 255, 10, 13]);
  const sent = [
    { kind: 't', payload: 'hello' },
    { kind: 'b', payload: binary },
    { kind: 't', payload: '' },
    { kind: 't', payload: 'line one\r\nline two\nend\n' },
    { kind: 't', payload: 'multi\nline\n\ntext' },
    { kind: 't', payload: 'ünïcödé ✓' },
  ];
  const res = await post('/echo', sse.token, 1, sent);
  assert.equal(res.status, 200, res.body.toString());
  assert.deepEqual(json(res), { next: 7 });
  await sse.until((e) => e.filter((x) => x.event !== 'control').length >= 6, 5000, 'six echoes');
  const got = sse.messages;
  assert.deepEqual(got.map((m) => m.id), [1, 2, 3, 4, 5, 6]);
  got.forEach((m, i) => {
    assert.equal(m.binary, sent[i].kind === 'b', `message ${i + 1} kind`);
    assert.deepEqual(m.payload, Buffer.from(sent[i].payload), `message ${i + 1} payload`);
  });
  sse.close();
});

test('POST: a retry is applied once, a gap is refused, bad bodies get 400 or 413', async () => {
  const sse = await openSse('/echo');
  const body = [{ payload: 'a' }, { payload: 'b' }];
  assert.deepEqual(json(await post('/echo', sse.token, 1, body)), { next: 3 });
  // The same POST again (its answer was lost, say): nothing is applied twice.
  assert.deepEqual(json(await post('/echo', sse.token, 1, body)), { next: 3 });
  // Overlapping: only the new one counts.
  assert.deepEqual(json(await post('/echo', sse.token, 2, [{ payload: 'b' }, { payload: 'c' }])),
    { next: 4 });
  const gap = await post('/echo', sse.token, 9, [{ payload: 'z' }]);
  assert.equal(gap.status, 409);
  assert.deepEqual(json(gap), { error: 'gap', expected: 4 });
  await sse.until((e) => e.filter((x) => x.event !== 'control').length >= 3, 5000, 'three echoes');
  await sleep(300);
  assert.deepEqual(sse.messages.map((m) => m.payload.toString()), ['a', 'b', 'c']);

  const target = `/_wsbridge/send/echo?s=${encodeURIComponent(sse.token)}`;
  for (const bad of ['', 'x\n', '1\nq1:a', '1\nt5:abc', '1\nt:abc', '1\nt99999999999999999999:a']) {
    const res = await request(port, 'POST', target, { body: bad });
    assert.equal(res.status, 400, `body ${JSON.stringify(bad)}: ${res.body}`);
    assert.equal(json(res).error, 'bad_request');
  }
  const big = await request(port, 'POST', target,
    { body: encodeBody(4, [{ payload: 'x'.repeat(65 * 1024) }]) });
  assert.equal(big.status, 413);
  const wrongMethod = await request(port, 'GET', target);
  assert.equal(wrongMethod.status, 405);
  sse.close();
});

test('POST: a body refused with 400 applied nothing of itself, so the client may send again', async () => {
  const sse = await openSse('/echo');
  const badClose = JSON.stringify({ type: 'close', code: 1001 });  // (1001 is no client's code)
  const refused = await request(port, 'POST', `/_wsbridge/send/echo?s=${encodeURIComponent(sse.token)}`,
    { body: Buffer.concat([encodeBody(1, [{ payload: 'first' }]), Buffer.from(`c${badClose.length}:${badClose}`)]) });
  assert.equal(refused.status, 400, String(refused.body));
  // Nothing of it was applied: sequence number 1 is still expected, and "first" never echoed.
  assert.deepEqual(json(await post('/echo', sse.token, 1, [{ payload: 'second' }])), { next: 2 });
  await sse.until((e) => e.filter((x) => x.event !== 'control').length >= 1, 5000, 'an echo');
  await sleep(300);
  assert.deepEqual(sse.messages.map((m) => m.payload.toString()), ['second']);
  sse.close();
});

test('tokens: forged, altered or unknown ones get 404', async () => {
  const sse = await openSse('/echo');
  const parts = sse.token.split('.');
  const forged = [
    'v3.eA.0123456789abcdef.1.9999999999.AAAAAAAAAAAAAAAAAAAAAA',
    [parts[0], parts[1], parts[2], String(Number(parts[3]) + 2), parts[4], parts[5]].join('.'),  // another id
    [parts[0], parts[1], parts[2], parts[3], String(Number(parts[4]) + 1), parts[5]].join('.'),  // longer life
    [parts[0], Buffer.from('elsewhere').toString('base64url'), ...parts.slice(2)].join('.'),
    [parts[0], parts[1], '0123456789abcdef', ...parts.slice(3)].join('.'),  // another run
    'garbage',
  ];
  for (const t of forged) {
    const res = await request(port, 'GET', `/_wsbridge/poll/echo?s=${encodeURIComponent(t)}`);
    assert.equal(res.status, 404, `poll with ${t}`);
    assert.equal(json(res).error, 'unknown_session');
    // An EventSource sees no status: a stream is told in an event.
    const stream = new SseStream(port, `/_wsbridge/sse/echo?s=${encodeURIComponent(t)}`);
    await stream.opened;
    assert.ok(await stream.endedWithin(3000));
    assert.equal(stream.status, 200);
    assert.equal(stream.controls[0].type, 'unknown_session', `sse with ${t}`);
    assert.equal((await post('/echo', t, 1, [{ payload: 'x' }])).status, 404);
  }
  // A route without fallbacks, or none at all.
  assert.equal((await request(port, 'GET', '/_wsbridge/sse/no-fallback')).status, 404);
  assert.equal((await request(port, 'GET', '/_wsbridge/sse/nowhere')).status, 404);
  assert.equal((await request(port, 'GET', '/_wsbridge/other/echo')).status, 404);
  sse.close();
});

test('resume: a new stream gets what the broken one missed, from Last-Event-ID or last=', async () => {
  const first = await openSse('/echo');
  const tok = first.token;
  await post('/echo', tok, 1, [{ payload: 'one' }, { payload: 'two' }]);
  await first.until((e) => e.length >= 3, 5000, 'two echoes');
  first.close();
  await sleep(200);
  // Sent while nothing carries the session: they wait in its queue.
  await post('/echo', tok, 3, [{ payload: 'three' }, { payload: 'four' }]);
  const second = await openSse('/echo', `?s=${encodeURIComponent(tok)}`, { 'Last-Event-ID': '1' });
  await second.until((e) => e.filter((x) => x.event !== 'control').length >= 3, 5000, 'the rest');
  assert.deepEqual(second.messages.map((m) => [m.id, m.payload.toString()]),
    [[2, 'two'], [3, 'three'], [4, 'four']]);
  assert.equal(second.controls[0].type, 'welcome');
  // The welcome's id is where the client stands, not the last id sent: an EventSource that breaks
  // right after it resumes from there (with the last id sent, 4, it would miss 2 to 4).
  assert.equal(second.events[0].event, 'control');
  assert.equal(second.events[0].id, '1');
  second.close();
  await sleep(200);
  const third = await openSse('/echo', `?s=${encodeURIComponent(tok)}&last=4`);
  await sleep(300);
  assert.deepEqual(third.messages, []);
  third.close();
});

test('resume past the buffer: the client is told which messages it lost', async () => {
  const sse = await openSse('/echo');
  const tok = sse.token;
  const records = Array.from({ length: 8 }, (_, i) => ({ payload: `${i + 1}`.padEnd(500, '.') }));
  await post('/echo', tok, 1, records.slice(0, 4));
  await post('/echo', tok, 5, records.slice(4));
  await sse.until((e) => e.filter((x) => x.event !== 'control').length >= 8, 5000, 'eight echoes');
  sse.close();
  // 2 KiB keep the last four of the 500-byte messages.
  const again = await openSse('/echo', `?s=${encodeURIComponent(tok)}&last=1`);
  await again.until((e) => e.filter((x) => x.event !== 'control').length >= 4, 5000, 'the kept ones');
  assert.deepEqual(again.controls[1], { type: 'lost', from: 2, to: 4 });
  // Ids: the welcome where the client stood, the notice past what it tells lost.
  assert.deepEqual(again.events.slice(0, 2).map((e) => e.id), ['1', '4']);
  assert.deepEqual(again.messages.map((m) => m.id), [5, 6, 7, 8]);
  again.close();
});

test('the byte limit ends a stream with "reconnect", and the next one carries on', async () => {
  const sse = await openSse('/echo');
  const tok = sse.token;
  const records = Array.from({ length: 6 }, (_, i) => ({ payload: `m${i + 1}:`.padEnd(1000, 'x') }));
  await post('/echo', tok, 1, records);
  assert.ok(await sse.endedWithin(5000), 'the stream ends past 4 KiB');
  assert.deepEqual(sse.controls.at(-1), { type: 'reconnect' });
  const seen = sse.messages.map((m) => m.id);
  assert.ok(seen.length >= 3 && seen.length < 6, `ids on the first stream: ${seen}`);
  const next = await openSse('/echo', `?s=${encodeURIComponent(tok)}&last=${seen.at(-1)}`);
  await next.until((e) => e.filter((x) => x.event !== 'control').length >= 6 - seen.length, 5000,
    'the rest');
  assert.deepEqual([...seen, ...next.messages.map((m) => m.id)], [1, 2, 3, 4, 5, 6]);
  next.close();
});

test('heartbeats keep an idle stream alive', async () => {
  const sse = await openSse('/echo');
  await sleep(2500);
  assert.ok((sse.comments ?? 0) >= 2, `heartbeats: ${sse.comments}`);
  assert.equal(sse.ended, false);
  sse.close();
});

test('long-polling: open, wait for a message, time out empty, resume by id', async () => {
  const opened = await request(port, 'GET', '/_wsbridge/poll/echo');
  assert.equal(opened.status, 200);
  assert.equal(opened.headers['content-type'], 'application/octet-stream');
  const welcomeBody = decodeBody(opened.body);
  const welcome = JSON.parse(welcomeBody.records[0].payload);
  assert.equal(welcome.type, 'welcome');
  assert.equal(welcome.transport, 'polling');
  const tok = encodeURIComponent(welcome.session);
  // A poll waits for a message.
  const started = Date.now();
  const waiting = request(port, 'GET', `/_wsbridge/poll/echo?s=${tok}&last=0`);
  await sleep(300);
  await post('/echo', welcome.session, 1, [{ payload: 'polled' }, { kind: 'b', payload: Buffer.from([7, 8]) }]);
  const got = decodeBody((await waiting).body);
  assert.ok(Date.now() - started < 1500);
  assert.equal(got.first, 1);
  assert.deepEqual(got.records.map((r) => [r.kind, r.payload.toString('hex')]),
    [['t', Buffer.from('polled').toString('hex')], ['b', '0708']]);
  // Nothing new: answered empty after poll_timeout (2 s).
  const t0 = Date.now();
  const empty = decodeBody((await request(port, 'GET', `/_wsbridge/poll/echo?s=${tok}&last=2`)).body);
  assert.ok(Date.now() - t0 >= 1500, 'the poll waited');
  assert.deepEqual(empty, { first: 3, records: [] });
  // The answer was lost: polling again from the old id gets the same messages again.
  const again = decodeBody((await request(port, 'GET', `/_wsbridge/poll/echo?s=${tok}&last=0`)).body);
  assert.equal(again.first, 3, 'acknowledged messages are gone: ids go on');
});

test('a session nothing carries ends after the reconnect window', async () => {
  const sse = await openSse('/echo');
  sse.close();
  await sleep(5500);
  const res = await request(port, 'GET', `/_wsbridge/poll/echo?s=${encodeURIComponent(sse.token)}`);
  assert.equal(res.status, 404);
  const stream = new SseStream(port, `/_wsbridge/sse/echo?s=${encodeURIComponent(sse.token)}`);
  await stream.opened;
  assert.ok(await stream.endedWithin(3000));
  assert.deepEqual(stream.controls.map((c) => c.type), ['unknown_session']);
});

test('the client ends its session with a close record; the rest of the body is not read', async () => {
  const sse = await openSse('/echo');
  const res = await post('/echo', sse.token, 1, [{ payload: 'last words' },
    { kind: 'c', payload: JSON.stringify({ type: 'close', code: 4001, reason: 'bye' }) },
    { payload: 'never read' }]);
  assert.equal(res.status, 200);
  assert.ok(await sse.endedWithin(3000), 'its stream ends');
  await sleep(200);
  assert.match(bridge.log, /code=4001 by=peer/);
  const after = await post('/echo', sse.token, 3, [{ payload: 'x' }]);
  assert.equal(after.status, 404);
  // Each on sessions of both service threads (a POST may land on the other one, which then
  // hands it over): a "type" that is not a string took a thread's inbox and the process down.
  const opens = await Promise.all(Array.from({ length: 6 }, () => openSse('/echo')));
  for (const bad of ['{"type":"close","code":1006}', '{"type":"other"}', 'not json',
    '{"type":"close","reason":5}', '{"type":5}', '{"type":["close"]}', '{"type":null}']) {
    for (const open of opens) {
      const r = await post('/echo', open.token, 1, [{ kind: 'c', payload: bad }]);
      assert.equal(r.status, 400, bad);
    }
  }
  const alive = await post('/echo', opens[0].token, 1, [{ payload: 'still here' }]);
  assert.equal(alive.status, 200);
  await opens[0].until((e) => e.some((x) => x.event !== 'control'));
  opens.forEach((o) => o.close());
});

test('a poll answer carries any number of bytes (over one 64 KiB write)', async () => {
  const opened = await request(port, 'GET', '/_wsbridge/poll/echo');
  const tok = JSON.parse(decodeBody(opened.body).records[0].payload).session;
  const big = Buffer.alloc(60 * 1024, 7);
  await post('/echo', tok, 1, [{ kind: 'b', payload: big }, { kind: 'b', payload: big }, { payload: 'end' }]);
  const got = decodeBody((await request(port, 'GET', `/_wsbridge/poll/echo?s=${encodeURIComponent(tok)}&last=0`)).body);
  assert.deepEqual(got.records.map((r) => r.payload.length), [big.length, big.length, 3]);
  assert.deepEqual(got.records[1].payload, big);
});

test('a close decided while nothing carried the session reaches its next request (1007)', async () => {
  const sse = await openSse('/small-queue');
  sse.close();
  await sleep(200);
  // A message that is not UTF-8 while no stream is open: the session is closed with 1007 (its
  // POST is told; so is the stream the client opens next).
  const bad = await post('/small-queue', sse.token, 1, [{ payload: Buffer.from([0x61, 0xff]) }]);
  assert.equal(bad.status, 410);
  await sleep(300);
  const next = new SseStream(port, `/_wsbridge/sse/small-queue?s=${encodeURIComponent(sse.token)}`);
  await next.opened;
  assert.ok(await next.endedWithin(5000));
  assert.deepEqual(next.controls.at(-1), { type: 'close', code: 1007, reason: 'invalid UTF-8' });
  const gone = await post('/small-queue', sse.token, 3, [{ payload: 'z' }]);
  assert.ok(gone.status === 404 || gone.status === 410, `after the close: ${gone.status}`);
});

test('an admin push that finds the queue full says so (503), never "delivered"', async () => {
  const opened = await request(port, 'GET', '/_wsbridge/poll/small-queue');
  const { conn, session } = JSON.parse(decodeBody(opened.body).records[0].payload);
  const push = (data) => request(adminPort, 'POST', '/api/v1/push',
    { body: JSON.stringify({ connection: conn, data }), headers: { 'content-type': 'application/json' } });
  // Nothing carries the session: the first 700 bytes wait in its 1 KiB queue, the next do not fit.
  const first = await push('a'.repeat(700));
  assert.equal(first.status, 200);
  assert.deepEqual(json(first), { delivered: 1 });
  const second = await push('b'.repeat(700));
  assert.equal(second.status, 503, second.body.toString());
  assert.equal(json(second).error, 'queue_full');
  // The session was closed for it (slow_consumer = "disconnect"), as the answer said.
  const next = decodeBody((await request(port, 'GET',
    `/_wsbridge/poll/small-queue?s=${encodeURIComponent(session)}&last=0`)).body);
  const close = next.records.filter((r) => r.kind === 'c').map((r) => JSON.parse(r.payload)).at(-1);
  assert.deepEqual(close, { type: 'close', code: 1013, reason: 'slow consumer' });
});

test('the rate limit closes a fallback session as it closes a WebSocket', async () => {
  const sse = await openSse('/limited');
  const records = Array.from({ length: 14 }, (_, i) => ({ payload: `${i}` }));
  await post('/limited', sse.token, 1, records);
  assert.ok(await sse.endedWithin(5000), 'closed');
  const close = sse.controls.at(-1);
  assert.equal(close.type, 'close');
  assert.equal(close.code, 1008);
});

test('a POST to a session whose close is decided gets 410 with that close, never 200', async () => {
  // The rate limit closes the session in the middle of this POST: the records after the 2nd were
  // not handed to the route, so the answer is the close, not the next sequence number.
  const sse = await openSse('/limited');
  sse.close();  // nothing carries it: the close waits for the client's next request
  await sleep(200);
  const records = Array.from({ length: 14 }, (_, i) => ({ payload: `${i}` }));
  const first = await post('/limited', sse.token, 1, records);
  assert.equal(first.status, 410);
  assert.deepEqual(json(first), { type: 'close', code: 1008, reason: 'rate limit exceeded' });
  // The session is still there (its close not carried yet): a later POST is not applied either.
  const later = await post('/limited', sse.token, 3, [{ payload: 'late' }]);
  assert.equal(later.status, 410);
  assert.equal(json(later).code, 1008);
  const next = new SseStream(port, `/_wsbridge/sse/limited?s=${encodeURIComponent(sse.token)}`);
  await next.opened;
  assert.ok(await next.endedWithin(5000));
  assert.equal(next.controls.at(-1).code, 1008);
});

// Polls `route` from message id `last` until `count` messages came; their payloads in order.
async function pollMessages(route, tok, count, last = 0) {
  const got = [];
  const deadline = Date.now() + 15000;
  while (got.length < count && Date.now() < deadline) {
    const res = await request(port, 'GET', `/_wsbridge/poll${route}?s=${encodeURIComponent(tok)}&last=${last}`);
    assert.equal(res.status, 200);
    const body = decodeBody(res.body);
    const messages = body.records.filter((r) => r.kind !== 'c');
    for (const c of body.records.filter((r) => r.kind === 'c')) {
      assert.notEqual(JSON.parse(c.payload).type, 'close', `closed: ${c.payload}`);
    }
    if (messages.length > 0) last = body.first + messages.length - 1;
    got.push(...messages.map((r) => r.payload.toString()));
  }
  return got;
}

test('echoes the client does not take pause its POSTs (backpressure): nothing is lost or closed', async () => {
  const logFrom = bridge.log.length;
  const opened = await request(port, 'GET', '/_wsbridge/poll/paced');
  const tok = JSON.parse(decodeBody(opened.body).records[0].payload).session;
  const message = (i) => ({ payload: `${i}:`.padEnd(1024, String(i % 10)) });
  const batch = (from) => Array.from({ length: 40 }, (_, i) => message(from + i));
  // Sends 120 messages in batches of 40 as the client does: each POST from the `next` the last
  // one answered (a POST stops where the route pauses the session).
  let done = false;
  const sending = (async () => {
    let seq = 1;
    while (seq <= 120) {
      const res = await post('/paced', tok, seq, batch(seq - 1).slice(0, 121 - seq));
      assert.equal(res.status, 200, res.body.toString());
      seq = json(res).next;
    }
    done = true;
  })();
  // 40 KiB of echoes waits unpolled: past the route's high-water mark (half of 64 KiB) the
  // session is paused, and the POSTs wait.
  await sleep(800);
  // Before: applied at once, and the third batch overflowed the queue (1013 slow consumer).
  assert.equal(done, false, 'the POSTs wait while the echoes are not taken');
  const got = await pollMessages('/paced', tok, 120);
  await sending;
  assert.deepEqual(got, Array.from({ length: 120 }, (_, i) => message(i).payload));
  assert.doesNotMatch(bridge.log.slice(logFrom), /is not reading|took nothing/);
});

test('a paused client that takes nothing for idle_timeout is closed (1013), its held POST told', async () => {
  const opened = await request(port, 'GET', '/_wsbridge/poll/stalled');
  const tok = JSON.parse(decodeBody(opened.body).records[0].payload).session;
  const batch = Array.from({ length: 40 }, () => ({ payload: 'z'.repeat(1024) }));
  assert.equal((await post('/stalled', tok, 1, batch)).status, 200);
  const started = Date.now();
  const held = await post('/stalled', tok, 41, [{ payload: 'held' }]);
  // Answered when the session is closed for not reading, about idle_timeout (2 s) after the pause.
  assert.equal(held.status, 410);
  assert.deepEqual(json(held), { type: 'close', code: 1013, reason: 'not reading' });
  assert.ok(Date.now() - started >= 1500, `answered after ${Date.now() - started} ms`);
  assert.match(bridge.log, /took nothing of its \d+ queued bytes for .* while its reading was paused/);
});

test('Origin and CORS: the route policy applies; allowed origins get CORS headers', async () => {
  const denied = await request(port, 'GET', '/_wsbridge/sse/origins', { headers: { origin: 'https://evil.example' } });
  assert.equal(denied.status, 403);
  const preflight = await request(port, 'OPTIONS', '/_wsbridge/send/origins?s=x',
    { headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers['access-control-allow-origin'], 'https://app.example');
  assert.match(preflight.headers['access-control-allow-methods'], /POST/);
  const sse = await openSse('/origins', '', { origin: 'https://app.example' });
  assert.equal(sse.headers['access-control-allow-origin'], 'https://app.example');
  assert.equal(sse.headers['access-control-allow-credentials'], 'true');
  // A token does not get a request past the Origin check.
  const stolen = await post('/origins', sse.token, 1, [{ payload: 'x' }]);
  assert.equal(stolen.status, 200, 'no Origin (not a browser) is allowed by default');
  const crossSite = await request(port, 'POST', `/_wsbridge/send/origins?s=${encodeURIComponent(sse.token)}`,
    { body: encodeBody(2, [{ payload: 'y' }]), headers: { origin: 'https://evil.example' } });
  assert.equal(crossSite.status, 403);
  sse.close();
});

test('credentials: the route\'s sources, the query included (EventSource sends no headers)', async () => {
  const none = await request(port, 'GET', '/_wsbridge/sse/private');
  assert.equal(none.status, 401);
  assert.match(none.headers['www-authenticate'], /Bearer/);
  const bad = await request(port, 'GET', '/_wsbridge/poll/private?access_token=nope');
  assert.equal(bad.status, 401);
  const viaQuery = await openSse('/private', `?access_token=${token('alice')}`);
  assert.equal(viaQuery.status, 200);
  viaQuery.close();
  const viaHeader = await request(port, 'GET', '/_wsbridge/poll/private',
    { headers: { authorization: `Bearer ${token('bob')}` } });
  assert.equal(viaHeader.status, 200);
});

test('sessions on both service threads: each request may land on either', async () => {
  const streams = await Promise.all(Array.from({ length: 12 }, () => openSse('/echo')));
  const conns = streams.map((s) => s.controls[0].conn);
  assert.ok(conns.some((c) => c % 2 === 0) || process.env.WSBRIDGE_TEST_THREADS === '1');
  await Promise.all(streams.map(async (s, i) => {
    for (let k = 0; k < 5; ++k) {
      const res = await post('/echo', s.token, k + 1, [{ payload: `s${i}m${k}` }]);
      assert.equal(res.status, 200);
    }
  }));
  await Promise.all(streams.map((s) => s.until((e) => e.filter((x) => x.event !== 'control').length >= 5)));
  streams.forEach((s, i) => {
    assert.deepEqual(s.messages.map((m) => m.payload.toString()), [0, 1, 2, 3, 4].map((k) => `s${i}m${k}`));
    s.close();
  });
});

test('a WebSocket asked for the welcome gets it first', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/echo?_wsb=welcome`);
  const messages = [];
  ws.on('message', (data) => messages.push(data.toString()));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.send('after');
  const deadline = Date.now() + 3000;
  while (messages.length < 2 && Date.now() < deadline) await sleep(20);
  const welcome = JSON.parse(messages[0]);
  assert.equal(welcome.type, 'welcome');
  assert.equal(welcome.transport, 'websocket');
  assert.equal(messages[1], 'after');
  ws.close();
  // Without it, nothing extra.
  const plain = new WebSocket(`ws://127.0.0.1:${port}/echo`);
  const first = new Promise((resolve) => plain.once('message', (d) => resolve(d.toString())));
  await new Promise((resolve) => plain.once('open', resolve));
  plain.send('only');
  assert.equal(await first, 'only');
  plain.close();
});

test('a route with an admission check holds the open for its verdict; http message mode works', async () => {
  const refused = await request(port, 'GET', '/_wsbridge/poll/legacy');
  assert.equal(refused.status, 403);
  assert.match(json(refused).message, /connect hook/);
  const sse = await openSse('/legacy', '', { cookie: 'session=let-me-in' });
  assert.equal(sse.status, 200);
  const hook = admissions.at(-1);
  assert.equal(hook.route, '/legacy');
  const res = await post('/legacy', sse.token, 1, [{ payload: 'quiet words' }]);
  assert.equal(res.status, 200);
  await sse.until((e) => e.filter((x) => x.event !== 'control').length >= 1, 5000, 'the answer');
  assert.equal(sse.messages[0].payload.toString(), 'QUIET WORDS');
  sse.close();
});

test('a WebSocket takes a fallback session over: what the client missed first, then the same session', async () => {
  // Several sessions, so that some upgrades land on the other service thread and move there.
  for (let round = 0; round < 6; ++round) {
    const sse = await openSse('/echo');
    const conn = sse.controls[0].conn;
    await post('/echo', sse.token, 1, [{ payload: 'one' }, { payload: 'two' }, { payload: 'three' }]);
    await sse.until((e) => e.filter((x) => x.event !== 'control').length >= 3, 5000, 'three echoes');
    // The client had only message 1 when it moved.
    const ws = new WebSocket(`ws://127.0.0.1:${port}/echo?_wsb=resume&s=${encodeURIComponent(sse.token)}&last=1`);
    const got = [];
    ws.on('message', (d) => got.push(d.toString()));
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    const deadline = Date.now() + 3000;
    while (got.length < 3 && Date.now() < deadline) await sleep(20);
    const welcome = JSON.parse(got[0]);
    assert.deepEqual(welcome, { type: 'welcome', conn, transport: 'websocket', resumed: true, from: 2 });
    assert.deepEqual(got.slice(1, 3), ['two', 'three']);
    // The old stream was told, and ended.
    assert.ok(await sse.endedWithin(3000));
    assert.deepEqual(sse.controls.at(-1), { type: 'moved', transport: 'websocket' });
    // The same session goes on over the WebSocket; its token no longer carries fallbacks.
    ws.send('four');
    while (got.length < 4 && Date.now() < deadline + 3000) await sleep(20);
    assert.equal(got[3], 'four');
    assert.equal((await post('/echo', sse.token, 4, [{ payload: 'x' }])).status, 404);
    ws.close();
  }
  assert.match(bridge.log, /moved to a WebSocket/);
});

test('a resume upgrade for no session, or with a bad token, is refused with 404', async () => {
  for (const q of ['_wsb=resume', '_wsb=resume&s=v2.1.1.AAAA', '_wsb=resume&s=garbage']) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/echo?${q}`);
    const status = await new Promise((resolve) => {
      ws.once('unexpected-response', (req, res) => resolve(res.statusCode));
      ws.once('open', () => resolve('open'));
      ws.once('error', () => resolve('error'));
    });
    assert.equal(status, 404, q);
  }
});

// lws selects the first offered subprotocol it knows, of any route's: a resume upgrade got
// another route's protocol (or any protocol at all on a route that speaks none), unchecked.
test('a resume upgrade is given only a subprotocol of its own route, as a first upgrade is', async () => {
  const sse = await openSse('/chat');
  const url = `ws://127.0.0.1:${port}/chat?_wsb=resume&s=${encodeURIComponent(sse.token)}&last=0`;
  const attempt = (protocols) => new Promise((resolve) => {
    const ws = new WebSocket(url, protocols);
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode);
    });
    ws.once('open', () => {
      resolve(`open ${ws.protocol}`);
      ws.close();
    });
    ws.once('error', (err) => resolve(`error ${err.message}`));
  });
  assert.equal(await attempt(['other.v1']), 400);
  assert.equal(await attempt(['other.v1', 'chat.v1']), 400); // the first known is lws' choice
  assert.equal(await attempt(['unknown.v1']), 400);
  // Refused upgrades leave the session where it was: this one moves it.
  assert.equal(await attempt(['unknown.v1', 'chat.v1']), 'open chat.v1');
  assert.ok(await sse.endedWithin(3000));
  assert.deepEqual(sse.controls.at(-1), { type: 'moved', transport: 'websocket' });
});

test('shutdown: a fallback session no request carries ends at once, not at the shutdown deadline', async () => {
  const own = tempDir();
  const ownPort = await freePort();
  const config = path.join(own, 'wsbridge.toml');
  writeFileSync(config, `[server]\nthreads = 2\nshutdown_timeout = "20s"\n[[listeners]]\n` +
    `address = "127.0.0.1"\nport = ${ownPort}\n[[routes]]\npath = "/echo"\nadapter = "echo"\n`);
  const child = new Child(process.env.WSBRIDGE_BINARY ?? path.join(sourceDir, 'build', 'release', 'wsbridge'),
    ['--config', config]);
  try {
    await waitFor(async () => (await fetch(`http://127.0.0.1:${ownPort}/healthz`).catch(() => null))?.ok, 'wsbridge');
    for (let i = 0; i < 4; ++i) {
      const res = await request(ownPort, 'GET', '/_wsbridge/poll/echo');
      assert.equal(res.status, 200);
    }
    const t0 = Date.now();
    await child.stop('SIGTERM');
    assert.ok(Date.now() - t0 < 8000, `took ${Date.now() - t0} ms`);
    assert.doesNotMatch(child.output, /shutdown timeout: dropping/);
  } finally {
    await child.stop('SIGKILL');
    removeDir(own);
  }
});

// With the [server] instance_id and [fallback] secret that several instances need, tokens
// outlive a restart (24 h), while connection ids start at 1 again: an old token named whichever
// session had its number now, on any route, and its poll read that session's messages and its
// POST wrote into it. The token names its process's run, which the owner checks.
test('a token from before a restart is unknown after it, whatever session has its number now', { timeout: 30000 }, async () => {
  const sub = path.join(dir, 'restarted');
  mkdirSync(sub, { recursive: true });
  const restartPort = await freePort();
  const restarted = new Bridge(sub, restartPort, `instance_id = "node-a"
[fallback]
secret = "a-fallback-secret-kept-across-restarts"
[[listeners]]
address = "127.0.0.1"
port = ${restartPort}
[[routes]]
path = "/echo"
adapter = "echo"
[[routes]]
path = "/echo2"
adapter = "echo"
`, { threads: 1 });
  const openPoll = async (route) => {
    const res = await request(restartPort, 'GET', `/_wsbridge/poll${route}`);
    assert.equal(res.status, 200, String(res.body));
    return JSON.parse(decodeBody(res.body).records[0].payload).session;
  };
  await restarted.start();
  let oldToken;
  try {
    oldToken = await openPoll('/echo');
  } finally {
    await restarted.stop();
  }
  await restarted.start();
  try {
    // The first session of the new run on each route: one of them has the old token's number.
    const victims = [await openPoll('/echo'), await openPoll('/echo2')];
    for (const [i, route] of ['/echo', '/echo2'].entries()) {
      const res = await request(restartPort, 'POST', `/_wsbridge/send${route}?s=${encodeURIComponent(victims[i])}`,
        { body: encodeBody(1, [{ payload: `secret of ${route}` }]) });
      assert.deepEqual(json(res), { next: 2 });
    }
    for (const route of ['/echo', '/echo2']) {
      const polled = await request(restartPort, 'GET', `/_wsbridge/poll${route}?s=${encodeURIComponent(oldToken)}&last=0`);
      assert.equal(polled.status, 404, `old token polled ${route}: ${polled.status} ${polled.body}`);
      const posted = await request(restartPort, 'POST', `/_wsbridge/send${route}?s=${encodeURIComponent(oldToken)}`,
        { body: encodeBody(2, [{ payload: 'injected' }]) });
      assert.equal(posted.status, 404, `old token posted to ${route}: ${posted.status} ${posted.body}`);
      const resumed = await new Promise((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${restartPort}${route}?_wsb=resume&s=${encodeURIComponent(oldToken)}`);
        ws.on('open', () => { ws.close(); resolve(101); });
        ws.on('unexpected-response', (_req, res) => { res.resume(); resolve(res.statusCode); });
        ws.on('error', () => resolve(0));
      });
      assert.equal(resumed, 404, `old token resumed at ${route}`);
    }
    // The sessions of the new run are untouched: each reads its own message.
    for (const [i, route] of ['/echo', '/echo2'].entries()) {
      const res = await request(restartPort, 'GET', `/_wsbridge/poll${route}?s=${encodeURIComponent(victims[i])}&last=0`);
      assert.equal(res.status, 200);
      const texts = decodeBody(res.body).records.filter((r) => r.kind === 't').map((r) => r.payload.toString());
      assert.deepEqual(texts, [`secret of ${route}`]);
    }
  } finally {
    await restarted.stop();
  }
});
