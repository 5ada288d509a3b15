// Unit tests of web/wsbridge.js' fallback transports without the server binary: the wire helpers
// (poll bodies, POST bodies, SSE events, the SSE stream's parser and reader), the broken-WebSocket
// memory, and every scenario of
// fallback_scenarios.mjs against fallback_fake_server.mjs (written from docs/FALLBACK.md).
//   node --test tests/e2e/fallback_client_unit.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { within } from './mqtt_passthrough_support.mjs';
import {
  parsePollBody, encodePostBody, decodeSseEvent, webSocketRemembered, rememberWebSocketBroken,
  WsbridgeSocket, connect,
} from '../../web/wsbridge.js';
import { SseParser, SseReader } from '../../web/wsbridge-sse.js';
import { FakeFallbackServer } from './fallback_fake_server.mjs';
import { Collector, MemoryStorage, NODE_TRANSPORT_OPTIONS, sleep, waitFor } from './fallback_client_support.mjs';
import { defineScenarios } from './fallback_scenarios.mjs';

const enc = (s) => new TextEncoder().encode(s);

test('poll bodies: byte lengths, all three record kinds, no records', () => {
  const body = Buffer.concat([enc('7\n'), enc('t5:é€'), enc('b3:'), Buffer.from([0, 10, 255]),
    enc('c15:{"type":"lost"}'), enc('t0:')]);
  const { firstId, records } = parsePollBody(body);
  assert.equal(firstId, 7);
  assert.deepEqual(records.map((r) => r.kind), ['t', 'b', 'c', 't']);
  assert.equal(new TextDecoder().decode(records[0].bytes), 'é€');
  assert.deepEqual([...records[1].bytes], [0, 10, 255]);
  assert.equal(new TextDecoder().decode(records[2].bytes), '{"type":"lost"}');
  assert.equal(records[3].bytes.length, 0);
  assert.deepEqual(parsePollBody(enc('42\n')), { firstId: 42, records: [] });
});

test('poll bodies: malformed ones throw', () => {
  for (const bad of ['', '7', 'x\n', '1\nt5:abc', '1\nq1:a', '1\nt:a', '1\nt-1:', '1\nt1a:b']) {
    assert.throws(() => parsePollBody(enc(bad)), Error, JSON.stringify(bad));
  }
});

test('POST bodies: the sequence number, then t/b records with byte lengths', () => {
  const body = encodePostBody(5, ['a€', Uint8Array.from([1, 2]), '', new ArrayBuffer(1)]);
  assert.deepEqual(Buffer.from(body), Buffer.concat([enc('5\nt4:a€b2:'), Buffer.from([1, 2]), enc('t0:b1:'), Buffer.from([0])]));
  assert.throws(() => encodePostBody(1, [42]), TypeError);
});

test('SSE events: plain text, frame t/b in base64, control', () => {
  assert.deepEqual(decodeSseEvent('message', 'a\nb'), { kind: 'text', text: 'a\nb' });
  assert.deepEqual(decodeSseEvent('frame', `t${Buffer.from('x\r\ny').toString('base64')}`), { kind: 'text', text: 'x\r\ny' });
  assert.deepEqual(decodeSseEvent('frame', 't'), { kind: 'text', text: '' });
  const b = decodeSseEvent('frame', `b${Buffer.from([0, 255]).toString('base64')}`);
  assert.equal(b.kind, 'binary');
  assert.deepEqual([...b.bytes], [0, 255]);
  assert.deepEqual(decodeSseEvent('control', '{"type":"reconnect"}'), { kind: 'control', control: { type: 'reconnect' } });
  assert.throws(() => decodeSseEvent('frame', 'zAAAA'));
});

// The SSE stream is read over fetch (web/wsbridge-sse.js: an EventSource hides the heartbeat
// comments): its parser is the EventSource's, whatever the pieces the text arrives in.
test('SSE stream: events as an EventSource has them, from any cut of the text', () => {
  const text = ': hb\n\nid: 7\ndata: a\ndata:b\n\nevent: control\r\ndata: {"x":1}\r\n\r\n'
    + 'data\n\nretry: 5\n: c\nevent: frame\rdata: t\r\rid\nevent: gone\n\nid: 9\ndata: cut';
  const want = [['message', 'a\nb', '7'], ['control', '{"x":1}', '7'], ['message', '', '7'], ['frame', 't', '7']];
  const events = (pieces) => {
    const got = [];
    const parser = new SseParser((...e) => got.push(e));
    for (const p of pieces) parser.feed(p);
    return got;
  };
  assert.deepEqual(events([text]), want);
  for (let i = 0; i <= text.length; i++) {
    for (const j of [i, i + 1, i + 2, text.length]) {
      assert.deepEqual(events([text.slice(0, i), '', text.slice(i, j), text.slice(j)]), want, `cut at ${i}, ${j}`);
    }
  }
});

test('SSE stream: an event or a line that never ends fails the stream at a bound', () => {
  const parser = new SseParser(() => {}, 100);
  parser.feed('data: ' + 'x'.repeat(50) + '\n\n');
  assert.throws(() => parser.feed('x'.repeat(101)), /over 100 characters/);
  const lines = new SseParser(() => {}, 100);
  assert.throws(() => { for (let i = 0; i < 30; i++) lines.feed('data: abcd\n'); }, /over 100/);
});

test('SSE stream: anything but a 200 event stream fails it, as does its end', async () => {
  const answers = [
    new Response('{"error":"unknown_session"}', { status: 404, headers: { 'Content-Type': 'text/event-stream' } }),
    new Response('<html>', { status: 200, headers: { 'Content-Type': 'text/html' } }),
    new Response('id: 1\ndata: x\n\n', { status: 200, headers: { 'Content-Type': 'text/event-stream; charset=utf-8' } }),
  ];
  const seen = [];
  for (const answer of answers) {
    const reader = new SseReader('http://x.test/s', async (_url, init) => {
      seen.push([init.credentials, init.cache, init.headers.Accept]);
      return answer;
    }, 'include');
    const got = [];
    reader.onmessage = (e) => got.push([e.data, e.lastEventId]);
    await within(new Promise((resolve) => { reader.onerror = resolve; }), 2000, 'the error');
    got.push(reader.closed);
    assert.deepEqual(got, answer.status === 200 && answer.headers.get('Content-Type') !== 'text/html' ? [['x', '1'], true] : [true]);
  }
  assert.deepEqual(seen[0], ['include', 'no-store', 'text/event-stream']);
});

test('the broken WebSocket is remembered per origin and path, until its expiry', async () => {
  const storage = new MemoryStorage();
  const url = new URL('wss://example.test:8443/mqtt?x=1');
  assert.equal(webSocketRemembered(storage, url), false);
  rememberWebSocketBroken(storage, url, 40);
  assert.deepEqual([...storage.map.keys()], ['wsbridge.ws-broken:wss://example.test:8443/mqtt']);
  assert.equal(webSocketRemembered(storage, url), true);
  assert.equal(webSocketRemembered(storage, new URL('wss://example.test:8443/echo')), false);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(webSocketRemembered(storage, url), false);
  rememberWebSocketBroken(storage, url, 0);
  assert.equal(storage.map.size, 0);
  // A storage that throws (a sandboxed frame) is no storage.
  const throwing = { getItem() { throw new Error('denied'); }, setItem() { throw new Error('denied'); } };
  assert.equal(webSocketRemembered(throwing, url), false);
  rememberWebSocketBroken(throwing, url, 1000);
});

test('transports that cannot exist here are skipped; none at all is a TypeError', () => {
  assert.throws(() => new WsbridgeSocket('ws://x.test/a', { WebSocket: null, EventSource: null, fetch: null }),
    /none of the transports/);
  // SSE needs fetch only (its stream is read over fetch), unless an EventSource is given; null: none.
  const offline = async () => { throw new TypeError('offline'); };
  assert.throws(() => new WsbridgeSocket('ws://x.test/a', { forceTransport: 'sse', EventSource: null, fetch: offline }),
    /none of the transports sse/);
  assert.throws(() => new WsbridgeSocket('ws://x.test/a', { forceTransport: 'sse', fetch: null }), /none of the transports sse/);
  new WsbridgeSocket('ws://127.0.0.1:9/a', { forceTransport: 'sse', fetch: offline }).close();
  assert.throws(() => connect('ws://x.test/a', { transports: ['websocket'], WebSocket: null }),
    /no WebSocket implementation/);
  const client = connect('ws://127.0.0.1:9/a', { WebSocket: null, fetch: async () => { throw new TypeError('offline'); } });
  assert.equal(client.transport, null);
  client.close();
});

let fake;
before(async () => { fake = await new FakeFallbackServer().start(); });
after(async () => { await fake?.stop(); });

defineScenarios(() => ({ bridge: fake }));

// ----- 1012 "service restart" through a fallback session's close record (docs/FALLBACK.md): the
// same as on a WebSocket (wsbridge_client_reconnect.test.mjs): the reconnect waits retry_ms.

async function fallbackClient(t, kind) {
  const client = connect(fake.url('/mqtt'), {
    ...NODE_TRANSPORT_OPTIONS, forceTransport: kind, sessionStorage: null, pingIntervalMs: 0,
    reconnect: { initialDelayMs: 5, maxDelayMs: 50, factor: 2, jitter: 0 },
  });
  t.after(() => client.close());
  const record = { closes: [], reconnecting: [], opens: 0 };
  client.on('close', (c) => record.closes.push(c));
  client.on('reconnecting', (r) => record.reconnecting.push(r));
  client.on('open', () => { record.opens += 1; });
  client.on('error', () => {});
  await waitFor(() => record.opens === 1, `the ${kind} session`, 5000);
  await client.subscribe('sensors/#', () => {});
  const session = [...fake.sessions.values()].filter((s) => s.route === '/mqtt' && !s.closed && s.subs.has('sensors/#')).at(-1);
  assert.equal(session.transport, kind);
  return { client, record, session };
}

for (const kind of ['sse', 'polling']) {
  test(`${kind}: a close record 1012 with retry_ms: the reconnect waits that long, then resubscribes`, async (t) => {
    const { client, record, session } = await fallbackClient(t, kind);
    const reason = 'service restart; retry_ms=300';
    const t0 = Date.now();
    session.close(1012, reason);
    await waitFor(() => record.closes.length === 1, 'the close', 3000);
    assert.deepEqual(record.closes, [{ code: 1012, reason, willReconnect: true }]);
    assert.deepEqual(record.reconnecting, [{ attempt: 1, delayMs: 300 }]);
    await waitFor(() => record.opens === 2, 'the reconnect', 5000);
    const next = [...fake.sessions.values()].filter((s) => s.route === '/mqtt' && s.createdAt >= t0);
    assert.equal(next.length, 1, 'one new session');
    assert.ok(next[0].createdAt - t0 >= 299, `a new session after ${next[0].createdAt - t0} ms`);
    await waitFor(() => next[0].subs.has('sensors/#'), 'the resubscription', 3000);
    assert.equal(client.transport, kind);
  });
}

test('a POST answered 410 with a close record 1012 ends the session with it, at once', async (t) => {
  // The server closed the session and the POST got there before the stream brought the record.
  const { client, record, session } = await fallbackClient(t, 'sse');
  const reason = 'service restart; retry_ms=400';
  session.close(1012, reason, { tell: false });
  const t0 = Date.now();
  await assert.rejects(client.publish('sensors/a', 1, { qos: 1 }), { code: 'disconnected' });
  await waitFor(() => record.closes.length === 1, 'the close', 3000);
  assert.ok(Date.now() - t0 < 1000, `closed after ${Date.now() - t0} ms`);
  assert.deepEqual(record.closes, [{ code: 1012, reason, willReconnect: true }]);
  assert.deepEqual(record.reconnecting, [{ attempt: 1, delayMs: 400 }]);
});

// ----- What a hostile probe found the upstream and the poll loop did wrong.

// The texts of /echo the fake got, in order.
// The texts the fake got from the session of `c` (a Collector), in order.
const echoed = (c) => fake.received.filter((r) => r.conn === c.socket.session.conn).map((r) => r.bytes.toString());

for (const kind of ['sse', 'polling']) test(`${kind}: a message handler that throws is reported, and the ${kind === 'sse' ? 'stream' : 'polling'} goes on`, async (t) => {
  const c = new Collector(fake.url('/echo'), { forceTransport: kind, sessionStorage: null });
  t.after(() => c.close());
  await c.opened;
  const errors = [];
  c.socket.onerror = (e) => errors.push(e.error);
  let thrown = 0;
  c.socket.onmessage = (e) => {
    c.messages.push(e.data);
    if (thrown++ === 0) throw new Error('a bug in the application');
  };
  c.socket.send('one');
  await waitFor(() => c.messages.length === 1, 'the first echo', 5000);
  c.socket.send('two');
  c.socket.send('three');
  await waitFor(() => c.messages.length === 3, 'the echoes after the exception', 5000);
  assert.deepEqual(c.messages.map((m) => Buffer.from(m).toString()), ['one', 'two', 'three']);
  assert.equal(errors.length, 1);
  assert.equal(c.socket.readyState, 1);
});

for (const kind of ['sse', 'polling']) {
  test(`${kind}: a POST answered 200 with something else than its answer is sent again`, async (t) => {
    const c = new Collector(fake.url('/echo'), { forceTransport: kind, sessionStorage: null });
    t.after(() => c.close());
    await c.opened;
    let portal = 1;
    fake.postHook = (session, _body, res) => {
      if (session?.conn !== c.socket.session.conn || portal-- <= 0) return false;
      res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html>Sign in to the guest Wi-Fi</html>');
      return true;
    };
    t.after(() => { fake.postHook = null; });
    c.socket.send('through a portal');
    await waitFor(() => echoed(c).length > 0, 'the message at the bridge', 5000);
    assert.deepEqual(echoed(c), ['through a portal']);
    assert.equal(Buffer.from(await c.next()).toString(), 'through a portal');
  });

  test(`${kind}: a batch over the bridge's POST limit (413) is split, not closed with 1009`, async (t) => {
    const limit = 64 * 1024;
    const c = new Collector(fake.url('/echo'), { forceTransport: kind, sessionStorage: null });
    t.after(() => c.close());
    await c.opened;
    fake.postHook = (session, body, res) => {
      if (session?.conn !== c.socket.session.conn || body.length <= limit) return false;
      res.writeHead(413, { 'Content-Type': 'application/json' }).end('{"error":"too_large"}');
      return true;
    };
    t.after(() => { fake.postHook = null; });
    const sent = ['a', 'b', 'c', 'd'].map((x) => x.repeat(30000));
    for (const m of sent) c.socket.send(m);
    await waitFor(() => echoed(c).length >= 4 || c.closes.length > 0, 'the four messages', 8000);
    assert.deepEqual(c.closes, []);
    assert.deepEqual(echoed(c).map((m) => m[0] + m.length), ['a30000', 'b30000', 'c30000', 'd30000']);
  });
}

test('closing a session aborts its POST in flight (a bridge that never answers kept every one open)', async (t) => {
  const hung = [];
  const c = new Collector(fake.url('/echo'), { forceTransport: 'polling', sessionStorage: null });
  await c.opened;
  fake.postHook = (session, _body, res) => {
    if (session?.conn !== c.socket.session.conn) return false;
    hung.push(res);
    return true;
  };
  t.after(() => { fake.postHook = null; for (const res of hung) res.destroy(); });
  c.socket.send('never answered');
  await waitFor(() => hung.length === 1, 'the POST at the bridge', 5000);
  const closed = new Promise((resolve) => hung[0].on('close', resolve));
  c.close();
  await within(closed, 3000, 'the POST\'s connection to close');
});

// A POST the bridge took and never answers (a bridge hung after accepting the connection, a proxy
// holding it) held it and every message after it until the application closed the socket: a
// WsbridgeSocket used alone has no ping to notice. Now it fails after postTimeout and is sent again
// as it was (the bridge skips what it applied), like a POST whose connection broke.
function hangPosts(t, c, hang) {
  const posts = []; // when each POST of the session reached the bridge
  const hung = [];
  fake.postHook = (session, body, res) => {
    if (session?.conn !== c.socket.session.conn) return false;
    posts.push(Date.now());
    const how = hang(posts.length);
    if (how === 'answer') return false;
    if (how === 'apply') fake.applyPost(session, body);
    hung.push(res);
    return true;
  };
  t.after(() => { fake.postHook = null; for (const res of hung) res.destroy(); });
  return posts;
}

for (const kind of ['sse', 'polling']) {
  test(`${kind}: a POST never answered is given up after postTimeout and sent again, nothing lost or twice`, async (t) => {
    const c = new Collector(fake.url('/echo'), { forceTransport: kind, sessionStorage: null, postTimeout: 300 });
    t.after(() => c.close());
    await c.opened;
    // The first never reaches the route, the second (the retry) does: neither is answered.
    const posts = hangPosts(t, c, (n) => ['drop', 'apply'][n - 1] ?? 'answer');
    c.socket.send('one');
    c.socket.send('two'); // (queued behind the POST of 'one')
    await waitFor(() => c.messages.length >= 2 || c.closes.length > 0, 'both echoes', 8000);
    await sleep(200);
    assert.deepEqual(c.messages.map((m) => Buffer.from(m).toString()), ['one', 'two']);
    assert.deepEqual(echoed(c), ['one', 'two']);
    assert.ok(posts[1] - posts[0] >= 300, `retried after ${posts[1] - posts[0]} ms`);
    assert.equal(c.socket.bufferedAmount, 0);
    assert.equal(c.socket.readyState, 1);
  });
}

test('polling: by default a POST waits the welcome\'s poll_timeout plus transportTimeout for its answer', async (t) => {
  // The fake's welcome says poll_timeout 2 (s): 2000 + 1000 ms, then the retry (after 500 ms).
  const c = new Collector(fake.url('/echo'), { forceTransport: 'polling', sessionStorage: null, transportTimeout: 1000 });
  t.after(() => c.close());
  await c.opened;
  const posts = hangPosts(t, c, (n) => (n === 1 ? 'drop' : 'answer'));
  c.socket.send('late');
  await waitFor(() => c.messages.length > 0 || c.closes.length > 0, 'the echo', 8000);
  assert.deepEqual(c.messages.map((m) => Buffer.from(m).toString()), ['late']);
  const waited = posts[1] - posts[0];
  assert.ok(waited >= 3000 && waited < 5000, `retried after ${waited} ms`);
});

// The bridge answers an empty poll on its one-second tick: up to a second after poll_timeout (3 s
// measured for a poll_timeout of 2). A poll bounded by poll_timeout plus transportTimeout alone
// was given up before that answer when transportTimeout was small: a lost poll every so often,
// and a session closed (1006) after four in a row.
test('polling: an empty poll answered up to a second after poll_timeout is waited for, not given up', async (t) => {
  fake.pollLateMs = 900;
  t.after(() => { fake.pollLateMs = 0; });
  const c = new Collector(fake.url('/echo'), { forceTransport: 'polling', sessionStorage: null, transportTimeout: 200 });
  t.after(() => c.close());
  await c.opened;
  const mine = () => fake.polls.filter((p) => p.conn === c.socket.session.conn);
  await waitFor(() => mine().length >= 2, 'two empty polls', 10000);
  assert.deepEqual(mine().slice(0, 2), [{ conn: c.socket.session.conn, cut: false }, { conn: c.socket.session.conn, cut: false }]);
  assert.deepEqual(c.closes, []);
});

test('a bridge that never answers a POST: the socket closes (1006) after the retries', async (t) => {
  const c = new Collector(fake.url('/echo'), { forceTransport: 'sse', sessionStorage: null, postTimeout: 200 });
  t.after(() => c.close());
  await c.opened;
  const posts = hangPosts(t, c, () => 'drop');
  c.socket.send('into the void');
  await waitFor(() => c.closes.length > 0, 'the close', 10000);
  assert.equal(posts.length, 4, 'the POST and its three retries');
  assert.deepEqual(c.closes.map((e) => [e.code, e.reason, e.wasClean]), [[1006, 'POST failed (no answer)', false]]);
  assert.deepEqual(echoed(c), []);
});

// An answer that applies nothing of the POST (200 naming its first message as next, or 409
// expecting it) sent the same POST again at once, for ever: thousands a second. It is a failed
// try now, with the retries' backoff and their end.
for (const status of [200, 409]) {
  test(`a POST answered ${status} with no progress is a failed try, not a flood of POSTs`, async (t) => {
    const c = new Collector(fake.url('/echo'), { forceTransport: 'sse', sessionStorage: null });
    t.after(() => { fake.postHook = null; c.close(); });
    await c.opened;
    const posts = [];
    fake.postHook = (session, body, res) => {
      if (session?.conn !== c.socket.session.conn) return false;
      posts.push(Date.now());
      const first = Number(body.toString('latin1').split('\n')[0]);
      res.writeHead(status, { 'Content-Type': 'application/json' })
        .end(JSON.stringify(status === 200 ? { next: first } : { error: 'gap', expected: first }));
      return true;
    };
    c.socket.send('nowhere');
    await waitFor(() => c.closes.length > 0, 'the close', 10000);
    assert.equal(posts.length, 4, 'the POST and its three retries');
    assert.equal(c.closes[0].code, 1006);
  });
}

// A message whose SSE id is not a positive integer made lastId NaN: the stream's next resume
// asked for last=NaN (the bridge refuses it) and repeated what came before. It is reported and
// skipped; the messages around it come once each.
test('sse: a message without a valid id is reported and skipped, the resume point kept', async (t) => {
  const c = new Collector(fake.url('/echo'), { forceTransport: 'sse', sessionStorage: null });
  t.after(() => c.close());
  const errors = [];
  c.socket.onerror = (e) => errors.push(e);
  await c.opened;
  const session = [...fake.sessions.values()].find((x) => x.conn === c.socket.session.conn);
  session.send(Buffer.from('one'), false);
  await waitFor(() => c.messages.length === 1, 'the first message', 5000);
  session.sse.write('id: x7\ndata: bogus\n\n');
  session.sse.write('data: no id at all\n\n');
  session.send(Buffer.from('two'), false);
  await waitFor(() => c.messages.length === 2, 'the second message', 5000);
  assert.deepEqual(c.messages, ['one', 'two']);
  assert.ok(errors.length >= 2, `${errors.length} errors reported`);
  // The stream ends: resumed from the last valid id, nothing repeated.
  session.sse.end();
  session.sse = null;
  await sleep(300);
  session.send(Buffer.from('three'), false);
  await waitFor(() => c.messages.length >= 3, 'the message after the resume', 5000);
  await sleep(200);
  assert.deepEqual(c.messages, ['one', 'two', 'three']);
});

// A welcome's poll_timeout of -10 or 3e6 s (past what setTimeout holds: it fires at once) made
// every POST time out at once, and a heartbeat of 2e6 s set the watchdog spinning on a 1 ms
// timer: out-of-range values are taken as the defaults (25 s; no watch).
test('sse: a welcome with impossible poll_timeout and heartbeat values is taken with the defaults', async (t) => {
  let posts = 0;
  const sockets = new Set();
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      if (url.pathname.startsWith('/_wsbridge/send/')) {
        posts += 1;
        const body = Buffer.concat(chunks).toString('latin1');
        const first = Number(body.split('\n')[0]);
        setTimeout(() => res.writeHead(200, { 'Content-Type': 'application/json' })
          .end(JSON.stringify({ next: first + 1 })), 100);
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write(`id: 0\nevent: control\ndata: ${JSON.stringify({ type: 'welcome', session: 'TOK', conn: 1,
        transport: 'sse', last: 0, heartbeat: 2e6, poll_timeout: -10 })}\n\n`);
    });
  });
  server.on('connection', (sock) => { sockets.add(sock); sock.on('close', () => sockets.delete(sock)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => { for (const sock of sockets) sock.destroy(); server.close(); });
  const c = new Collector(`ws://127.0.0.1:${server.address().port}/echo`,
    { forceTransport: 'sse', sessionStorage: null, WebSocket: null, transportTimeout: 1000 });
  t.after(() => c.close());
  await c.opened;
  c.socket.send('hello');
  await sleep(1500);
  assert.equal(posts, 1, 'the POST was given up and sent again');
  assert.deepEqual(c.closes, []);
  assert.equal(c.socket.bufferedAmount, 0);
});

// A stream that ends right after each welcome (a proxy that cuts it) was resumed every 50 ms for
// ever: a welcome reset the count of lost streams. Now only a message, or a stream that lasts,
// does; the session gives up after a few and the client's own backoff takes over.
test('sse: streams that end after their welcome are resumed a few times, more slowly, then given up', async (t) => {
  const c = new Collector(fake.url('/echo'), { forceTransport: 'sse', sessionStorage: null });
  t.after(() => c.close());
  await c.opened;
  const mine = c.socket.session.conn;
  let resumed = 0;
  fake.resumedStreamHook = (session, res) => {
    if (session.conn !== mine) return false;
    resumed += 1;
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store' });
    res.end(`id: ${session.nextId - 1}\nevent: control\ndata: ${session.welcome()}\n\n`);
    return true;
  };
  t.after(() => { fake.resumedStreamHook = null; });
  fake.sessions.get([...fake.sessions.keys()].find((k) => fake.sessions.get(k).conn === mine)).sse?.end();
  await waitFor(() => c.closes.length > 0, 'the session given up', 8000);
  assert.ok(resumed <= 4, `${resumed} streams resumed`);
  assert.equal(c.closes[0].code, 1006);
});
