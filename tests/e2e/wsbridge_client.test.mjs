// Unit tests of web/wsbridge.js with a fake WebSocket (no network):
//   node --test tests/e2e/wsbridge_client.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, topicMatches, WsbridgeError } from '../../web/wsbridge.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A WebSocket stand-in the tests drive by hand: open(), receive(), serverClose().
class FakeSocket {
  static instances = [];

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    FakeSocket.instances.push(this);
  }

  send(data) {
    if (this.readyState !== 1) throw new Error('InvalidStateError');
    this.sent.push(JSON.parse(data));
  }

  close(code, reason) {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  open() {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(frame) {
    this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
  }

  serverClose(code = 1006, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  sentOfType(type) {
    return this.sent.filter((f) => f.type === type);
  }

  last() {
    return this.sent[this.sent.length - 1];
  }

  ack(frame) {
    this.receive({ type: 'ack', id: frame.id });
  }
}

// A fresh client on a fresh fake class, with fast timers unless told otherwise.
function setup(options = {}) {
  FakeSocket.instances = [];
  const client = connect('ws://bridge.test/mqtt', {
    WebSocket: FakeSocket,
    pingIntervalMs: 0,
    reconnect: { initialDelayMs: 5, maxDelayMs: 50, factor: 2, jitter: 0 },
    ...options,
  });
  const errors = [];
  client.on('error', (e) => errors.push(e));
  const socket = () => FakeSocket.instances[FakeSocket.instances.length - 1];
  return { client, errors, socket, sockets: FakeSocket.instances };
}

async function waitFor(check, what, timeoutMs = 1000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

// Waits for the reconnect and opens the new socket.
async function reconnect(env) {
  const before = env.sockets.length;
  await waitFor(() => env.sockets.length > before, 'a new socket');
  env.socket().open();
}

test('the token travels as access_token, and subprotocols are passed on', () => {
  const { client, socket } = setup({ token: 'a b+c', protocols: ['v1'] });
  const url = new URL(socket().url);
  assert.equal(url.pathname, '/mqtt');
  assert.equal(url.searchParams.get('access_token'), 'a b+c');
  assert.deepEqual(socket().protocols, ['v1']);
  assert.equal(client.state, 'connecting');
  assert.equal(client.upstream, 'unknown');
  client.close();
});

test('state, upstream status and open/close events', () => {
  const { client, socket } = setup();
  const events = [];
  client.on('open', () => events.push('open'));
  client.on('status', (s) => events.push(s));
  socket().open();
  assert.equal(client.state, 'open');
  socket().receive({ type: 'status', upstream: 'up' });
  socket().receive({ type: 'status', upstream: 'up' }); // no change, no event
  socket().receive({ type: 'status', upstream: 'down' });
  socket().receive({ type: 'status', dropped: 3 });
  assert.equal(client.upstream, 'down');
  assert.deepEqual(events, ['open', { upstream: 'up' }, { upstream: 'down' }, { dropped: 3 }]);
  client.close();
  assert.equal(client.state, 'closed');
  assert.equal(client.upstream, 'unknown');
  assert.deepEqual(socket().closedWith, { code: 1000, reason: '' });
});

test('subscribe resolves on the ack and rejects with the error frame', async () => {
  const { client, socket } = setup();
  socket().open();
  const ok = client.subscribe('sensors/+/temp', () => {}, { qos: 1 });
  const frame = socket().last();
  assert.deepEqual(frame, { type: 'subscribe', topic: 'sensors/+/temp', qos: 1, id: frame.id });
  assert.equal(typeof frame.id, 'string');
  socket().ack(frame);
  await ok;

  const denied = client.subscribe('secret/#', () => {});
  const f2 = socket().last();
  assert.notEqual(f2.id, frame.id);
  socket().receive({ type: 'error', id: f2.id, code: 'forbidden', message: 'not allowed' });
  await assert.rejects(denied, (e) => e instanceof WsbridgeError && e.code === 'forbidden' && e.message === 'not allowed');
  // A refused subscription is not remembered.
  assert.deepEqual(client.subscriptions, ['sensors/+/temp']);
  client.close();
});

test('MQTT filter matching: +, # and the $ rule', () => {
  assert.ok(topicMatches('sensors/+/temp', 'sensors/k1/temp'));
  assert.ok(!topicMatches('sensors/+/temp', 'sensors/k1/hum'));
  assert.ok(!topicMatches('sensors/+/temp', 'sensors/k1/x/temp'));
  assert.ok(topicMatches('sensors/+', 'sensors/'));
  assert.ok(topicMatches('sensors/#', 'sensors'));
  assert.ok(topicMatches('sensors/#', 'sensors/a/b/c'));
  assert.ok(!topicMatches('sensors/#', 'sensorsX/a'));
  assert.ok(topicMatches('#', 'a/b'));
  assert.ok(topicMatches('+/+', '/x'));
  assert.ok(!topicMatches('#', '$SYS/broker/uptime'));
  assert.ok(!topicMatches('+/broker/uptime', '$SYS/broker/uptime'));
  assert.ok(topicMatches('$SYS/#', '$SYS/broker/uptime'));
  assert.ok(topicMatches('$share/g/sensors/+', 'sensors/a'));
  assert.ok(!topicMatches('a/b', 'a/b/c'));
});

test('each matching handler gets a message once, others none', async () => {
  const { client, socket } = setup();
  socket().open();
  const got = { temp: [], all: [], other: [], shared: [] };
  const shared = (m) => got.shared.push(m.topic);
  const subs = [
    client.subscribe('sensors/+/temp', (m) => got.temp.push(m.topic)),
    client.subscribe('sensors/#', (m) => got.all.push(m.topic)),
    client.subscribe('cmd/#', (m) => got.other.push(m.topic)),
    client.subscribe('sensors/k1/+', shared),
    client.subscribe('sensors/+/temp', shared), // the same handler under two filters
    client.subscribe('#', (m) => got.other.push(`#:${m.topic}`)),
  ];
  for (const f of socket().sentOfType('subscribe')) socket().ack(f);
  await Promise.all(subs);
  const everything = [];
  client.on('message', (m) => everything.push(m.topic));

  socket().receive({ type: 'message', topic: 'sensors/k1/temp', payload: 21.5, qos: 1, retain: true });
  socket().receive({ type: 'message', topic: '$SYS/uptime', payload: 'x', qos: 0, retain: false });
  assert.deepEqual(got.temp, ['sensors/k1/temp']);
  assert.deepEqual(got.all, ['sensors/k1/temp']);
  assert.deepEqual(got.shared, ['sensors/k1/temp']);
  assert.deepEqual(got.other, ['#:sensors/k1/temp']); // '#' does not match $SYS
  assert.deepEqual(everything, ['sensors/k1/temp', '$SYS/uptime']);

  // After an unsubscribe its handler gets nothing more.
  const un = client.unsubscribe('sensors/#');
  assert.deepEqual(socket().last(), { type: 'unsubscribe', topic: 'sensors/#', id: socket().last().id });
  socket().ack(socket().last());
  await un;
  socket().receive({ type: 'message', topic: 'sensors/k2/temp', payload: 1, qos: 0, retain: false });
  assert.deepEqual(got.all, ['sensors/k1/temp']);
  assert.deepEqual(got.temp, ['sensors/k1/temp', 'sensors/k2/temp']);
  client.close();
});

test('message fields, and payload_b64 decoded to a Uint8Array', async () => {
  const { client, socket } = setup();
  socket().open();
  const got = [];
  const sub = client.subscribe('bin/#', (m) => got.push(m));
  socket().ack(socket().last());
  await sub;
  socket().receive({ type: 'message', topic: 'bin/a', payload_b64: 'AP+AQQ==', qos: 2, retain: true });
  socket().receive({ type: 'message', topic: 'bin/b', payload: { on: true }, qos: 0, retain: false });
  assert.ok(got[0].payloadBytes instanceof Uint8Array);
  assert.deepEqual([...got[0].payloadBytes], [0, 255, 128, 65]);
  assert.equal(got[0].payload, got[0].payloadBytes);
  assert.equal(got[0].qos, 2);
  assert.equal(got[0].retain, true);
  assert.deepEqual(got[1], { topic: 'bin/b', payload: { on: true }, qos: 0, retain: false });
  client.close();
});

test('publish: JSON payloads, binary as payload_b64, ack and error', async () => {
  const { client, socket } = setup();
  socket().open();
  const p1 = client.publish('cmd/lamp', { on: true }, { qos: 1, retain: true });
  const f1 = socket().last();
  assert.deepEqual(f1, { type: 'publish', topic: 'cmd/lamp', payload: { on: true }, qos: 1, retain: true, id: f1.id });
  socket().ack(f1);
  await p1;

  const p2 = client.publish('bin/x', new Uint8Array([0, 255, 128, 65]));
  const f2 = socket().last();
  assert.equal(f2.payload_b64, 'AP+AQQ==');
  assert.equal('payload' in f2, false);
  assert.equal(f2.qos, 0);
  assert.equal(f2.retain, false);
  socket().receive({ type: 'error', id: f2.id, code: 'upstream_unavailable', message: 'broker down' });
  await assert.rejects(p2, { code: 'upstream_unavailable' });

  const p3 = client.publish('bin/y', new Uint8Array([1, 2]).buffer);
  assert.equal(socket().last().payload_b64, 'AQI=');
  socket().ack(socket().last());
  await p3;

  await assert.rejects(client.publish('a/+', 1), { code: 'bad_request' });
  client.close();
});

test('publishes are queued while disconnected and sent after the reconnect; queue_full beyond the bound', async () => {
  const env = setup({ maxQueuedPublishes: 2 });
  const { client, socket } = env;
  // Not yet open: queued.
  const p1 = client.publish('a/1', 'one');
  const p2 = client.publish('a/2', 2, { qos: 1 });
  await assert.rejects(client.publish('a/3', 3), (e) => e instanceof WsbridgeError && e.code === 'queue_full');
  assert.equal(socket().sent.length, 0);

  socket().open();
  const pubs = socket().sentOfType('publish');
  assert.deepEqual(pubs.map((f) => [f.topic, f.payload, f.qos]), [['a/1', 'one', 0], ['a/2', 2, 1]]);
  pubs.forEach((f) => socket().ack(f));
  await Promise.all([p1, p2]);

  // Dropped: an in-flight publish fails with "disconnected", a later one waits for the reconnect.
  const inFlight = client.publish('b/1', 'x');
  socket().serverClose(1006);
  await assert.rejects(inFlight, { code: 'disconnected' });
  assert.equal(client.state, 'reconnecting');
  const queued = client.publish('b/2', 'y');
  await reconnect(env);
  const f = socket().sentOfType('publish');
  assert.deepEqual(f.map((x) => x.topic), ['b/2']);
  socket().ack(f[0]);
  await queued;
  client.close();
});

test('subscriptions are restored after a reconnect, with their handlers', async () => {
  const env = setup();
  const { client, socket, errors } = env;
  socket().open();
  const got = [];
  const a = client.subscribe('sensors/#', (m) => got.push(m.payload), { qos: 1 });
  const b = client.subscribe('cmd/#', () => {});
  socket().sentOfType('subscribe').forEach((f) => socket().ack(f));
  await Promise.all([a, b]);

  const closes = [];
  client.on('close', (c) => closes.push(c));
  socket().serverClose(1001, 'going away');
  assert.deepEqual(closes, [{ code: 1001, reason: 'going away', willReconnect: true }]);

  // Made while disconnected: settled by the resubscription.
  let lateDone = false;
  const late = client.subscribe('late/#', (m) => got.push(`late:${m.payload}`)).then(() => { lateDone = true; });
  await reconnect(env);
  const resent = socket().sentOfType('subscribe');
  assert.deepEqual(resent.map((f) => [f.topic, f.qos]), [['sensors/#', 1], ['cmd/#', 0], ['late/#', 0]]);
  await sleep(5);
  assert.equal(lateDone, false);
  socket().ack(resent[0]);
  socket().ack(resent[2]);
  await late;
  // Denied after the reconnect: an 'error' event, and the subscription is forgotten.
  socket().receive({ type: 'error', id: resent[1].id, code: 'forbidden', message: 'no more' });
  await sleep(0);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 'forbidden');
  assert.deepEqual(client.subscriptions, ['sensors/#', 'late/#']);

  socket().receive({ type: 'message', topic: 'sensors/x', payload: 1, qos: 0, retain: false });
  socket().receive({ type: 'message', topic: 'late/x', payload: 2, qos: 0, retain: false });
  assert.deepEqual(got, [1, 'late:2']);
  client.close();
});

test('a subscribe denied while it waited for the reconnect rejects its promise', async () => {
  const env = setup();
  const { client, socket, errors } = env;
  socket().serverClose(1006); // the first attempt fails
  const p = client.subscribe('secret/#', () => {});
  await reconnect(env);
  const f = socket().last();
  socket().receive({ type: 'error', id: f.id, code: 'forbidden', message: 'denied' });
  await assert.rejects(p, { code: 'forbidden' });
  assert.deepEqual(client.subscriptions, []);
  assert.equal(errors.length, 0); // reported through the promise, not twice
  client.close();
});

test('pending requests reject with "disconnected" on close', async () => {
  const { client, socket } = setup();
  socket().open();
  const sub = client.subscribe('x/#', () => {});
  const ref = client.refreshToken('t2');
  const rpc = client.request('GET', '/items', undefined, { headers: { accept: 'application/json' } });
  socket().serverClose(1011);
  await assert.rejects(sub, { code: 'disconnected' });
  await assert.rejects(ref, { code: 'disconnected' });
  await assert.rejects(rpc, { code: 'disconnected' });
  assert.deepEqual(client.subscriptions, []); // a failed subscribe is not remembered
  client.close();
});

test('backoff grows exponentially, is capped, and resets after an open', async () => {
  const env = setup({ reconnect: { initialDelayMs: 10, maxDelayMs: 40, factor: 2, jitter: 0 } });
  const { client, socket } = env;
  const seen = [];
  client.on('reconnecting', (r) => seen.push(r));
  const times = [];
  for (let i = 0; i < 4; i++) {
    const t0 = Date.now();
    const before = env.sockets.length;
    socket().serverClose(1006);
    await waitFor(() => env.sockets.length > before, 'a reconnect');
    times.push(Date.now() - t0);
  }
  assert.deepEqual(seen, [
    { attempt: 1, delayMs: 10 }, { attempt: 2, delayMs: 20 },
    { attempt: 3, delayMs: 40 }, { attempt: 4, delayMs: 40 },
  ]);
  // Timers fire no earlier than asked (a millisecond of slack for timer rounding).
  times.forEach((t, i) => assert.ok(t >= seen[i].delayMs - 1, `attempt ${i + 1} after ${t} ms`));
  assert.equal(client.state, 'reconnecting');

  socket().open();
  assert.equal(client.state, 'open');
  socket().serverClose(1006);
  assert.deepEqual(seen.at(-1), { attempt: 1, delayMs: 10 });
  client.close();
});

test('jitter spreads the delay within its bounds', () => {
  for (const [random, expected] of [[0, 70], [0.5, 100], [1, 130]]) {
    const { client, socket } = setup({
      random: () => random,
      reconnect: { initialDelayMs: 100, maxDelayMs: 1000, factor: 2, jitter: 0.3 },
    });
    const seen = [];
    client.on('reconnecting', (r) => seen.push(r.delayMs));
    socket().serverClose(1006);
    assert.deepEqual(seen, [expected]);
    client.close();
  }
});

test('no pong within pongTimeoutMs: the socket is closed with 4000 and reopened', async () => {
  // The timeout is generous against a busy machine: the test answers within a few ms.
  const env = setup({ pingIntervalMs: 10, pongTimeoutMs: 150 });
  const { client, socket } = env;
  const first = socket();
  first.open();
  // Answered pings keep the connection, and any frame counts as an answer.
  for (let i = 0; i < 4; i++) {
    const before = first.sentOfType('ping').length;
    await waitFor(() => first.sentOfType('ping').length > before, 'a ping');
    const ping = first.sentOfType('ping').at(-1);
    assert.equal(typeof ping.id, 'string');
    first.receive(i % 2 ? { type: 'status', upstream: 'up' } : { type: 'pong', id: ping.id });
  }
  assert.equal(first.closedWith, null);
  assert.equal(client.state, 'open');

  const closes = [];
  client.on('close', (c) => closes.push(c));
  const t0 = Date.now();
  await waitFor(() => first.closedWith !== null, 'the pong timeout');
  assert.ok(Date.now() - t0 >= 100, 'closed before the pong timeout');
  assert.equal(first.closedWith.code, 4000);
  assert.deepEqual(closes, [{ code: 4000, reason: 'pong timeout', willReconnect: true }]);
  assert.equal(client.state, 'reconnecting');
  await waitFor(() => env.sockets.length === 2, 'the reconnect');
  // A late close event of the abandoned socket changes nothing.
  first.serverClose(1006);
  assert.equal(closes.length, 1);
  client.close();
});

test('no reconnect after 1008, nor after close()', async () => {
  const env = setup();
  const { client, socket } = env;
  socket().open();
  const queued = [];
  const closes = [];
  client.on('close', (c) => closes.push(c));
  client.on('reconnecting', () => assert.fail('must not reconnect'));
  socket().serverClose(1008, 'policy');
  assert.deepEqual(closes, [{ code: 1008, reason: 'policy', willReconnect: false }]);
  assert.equal(client.state, 'closed');
  queued.push(client.publish('a', 1));
  await assert.rejects(queued[0], { code: 'closed' });
  await sleep(30);
  assert.equal(env.sockets.length, 1);

  const env2 = setup();
  env2.socket().serverClose(1006); // now waiting to reconnect
  const waiting = env2.client.publish('a', 1);
  env2.client.close();
  assert.equal(env2.client.state, 'closed');
  await assert.rejects(waiting, { code: 'closed' });
  await sleep(30);
  assert.equal(env2.sockets.length, 1);
});

test('refreshToken sends an auth frame, resolves on the ack, and is used on reconnect', async () => {
  const env = setup({ token: 'old' });
  const { client, socket } = env;
  socket().open();
  const p = client.refreshToken('new');
  const f = socket().last();
  assert.deepEqual(f, { type: 'auth', token: 'new', id: f.id });
  socket().ack(f);
  await p;
  socket().serverClose(1006);
  await reconnect(env);
  assert.equal(new URL(socket().url).searchParams.get('access_token'), 'new');
  client.close();
});

test('request: response frames and error frames', async () => {
  const { client, socket } = setup();
  socket().open();
  const p = client.request('POST', '/items', { a: 1 }, { headers: { 'x-k': 'v' } });
  const f = socket().last();
  assert.deepEqual(f, { type: 'request', method: 'POST', path: '/items', headers: { 'x-k': 'v' }, body: { a: 1 }, id: f.id });
  socket().receive({ type: 'response', id: f.id, status: 201, headers: { 'content-type': 'application/json' }, body: { ok: true } });
  assert.deepEqual(await p, { status: 201, headers: { 'content-type': 'application/json' }, body: { ok: true } });

  const q = client.request('GET', '/nope');
  socket().receive({ type: 'error', id: socket().last().id, code: 'bad_request', message: 'no route' });
  await assert.rejects(q, { code: 'bad_request', message: 'no route' });
  client.close();
});

test('requests time out; errors without an id become error events', async () => {
  const { client, socket, errors } = setup({ requestTimeoutMs: 10 });
  socket().open();
  await assert.rejects(client.publish('a/b', 1), { code: 'timeout' });
  socket().receive({ type: 'error', code: 'rate_limited', message: 'slow down' });
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 'rate_limited');
  client.close();
});

test('a throwing handler is reported and does not stop the others', async () => {
  const { client, socket, errors } = setup();
  socket().open();
  const got = [];
  const subs = [
    client.subscribe('t/#', () => { throw new Error('boom'); }),
    client.subscribe('t/+', (m) => got.push(m.topic)),
  ];
  socket().sentOfType('subscribe').forEach((f) => socket().ack(f));
  await Promise.all(subs);
  socket().receive({ type: 'message', topic: 't/1', payload: 1, qos: 0, retain: false });
  assert.deepEqual(got, ['t/1']);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].message, 'boom');
  client.close();
});

test('off removes a listener', () => {
  const { client, socket } = setup();
  let n = 0;
  const fn = () => { n += 1; };
  client.on('status', fn);
  socket().open();
  socket().receive({ type: 'status', upstream: 'up' });
  client.off('status', fn);
  socket().receive({ type: 'status', upstream: 'down' });
  assert.equal(n, 1);
  client.close();
});
