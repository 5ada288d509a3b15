// Unit tests of web/wsbridge.js with a fake WebSocket (no network): reconnects and what they
// restore or reject, the queue while disconnected, backoff and jitter, the pong timeout, the
// closes that end reconnecting, and token refresh. The fake is in wsbridge_client_fake.mjs.
//   node --test tests/e2e/wsbridge_client_reconnect.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WsbridgeError } from '../../web/wsbridge.js';
import { sleep, setup, waitFor, reconnect } from './wsbridge_client_fake.mjs';
import { MemoryStorage } from './fallback_client_support.mjs';

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
  const env = setup({ reconnect: { initialDelayMs: 10, maxDelayMs: 40, factor: 2, jitter: 0, stableAfterMs: 0 } });
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

// A peer that accepts and drops at once (a broken proxy, a bridge refusing after its welcome)
// was retried at the first delay for ever: the backoff starts over only once a connection held.
test('backoff resets only after a connection stayed open stableAfterMs', async () => {
  const env = setup({ reconnect: { initialDelayMs: 10, maxDelayMs: 80, factor: 2, jitter: 0, stableAfterMs: 150 } });
  const { client, socket } = env;
  const seen = [];
  client.on('reconnecting', (r) => seen.push(r));
  for (let i = 0; i < 3; i++) {
    const before = env.sockets.length;
    socket().open();
    socket().serverClose(1006); // dropped right after it opened
    await waitFor(() => env.sockets.length > before, 'a reconnect');
  }
  assert.deepEqual(seen.map((r) => r.delayMs), [10, 20, 40], 'a connection dropped at once reset the backoff');
  socket().open();
  await sleep(250); // held past stableAfterMs
  socket().serverClose(1006);
  assert.deepEqual(seen.at(-1), { attempt: 1, delayMs: 10 });
  client.close();
});

test('1012 with retry_ms=0 waits the first backoff delay at least (no reconnect spin)', async (t) => {
  const env = setupFor(t, { reconnect: { initialDelayMs: 60, maxDelayMs: 1000, factor: 2, jitter: 0 } });
  const seen = [];
  env.client.on('reconnecting', (r) => seen.push(r));
  env.socket().open();
  const took = await closeAndTimeReconnect(env, 1012, 'service restart; retry_ms=0');
  assert.deepEqual(seen, [{ attempt: 1, delayMs: 60 }]);
  assert.ok(took >= 59, `reconnected after ${took} ms`);
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


// ----- 1012 "service restart" (docs/PROTOCOL.md, close codes): a bridge that drains closes every
// client with 1012 and `retry_ms=N` in the reason, N jittered per connection by the bridge.

// Closes the current socket with `code`/`reason` and resolves once the next socket exists, with
// the time that took; rejects when none appears within `timeoutMs`.
// A client closed when the test ends, passed or failed (a failed one would reconnect forever).
function setupFor(t, options) {
  const env = setup(options);
  t.after(() => env.client.close());
  return env;
}

async function closeAndTimeReconnect(env, code, reason, timeoutMs = 2000) {
  const before = env.sockets.length;
  const t0 = Date.now();
  env.socket().serverClose(code, reason);
  await waitFor(() => env.sockets.length > before, 'the reconnect', timeoutMs);
  return Date.now() - t0;
}

test('1012 with retry_ms: the reconnect waits that long (not the backoff), then resubscribes', async (t) => {
  const env = setupFor(t); // backoff: 5 ms
  const { client, socket } = env;
  socket().open();
  const sub = client.subscribe('sensors/#', () => {});
  socket().ack(socket().last());
  await sub;
  const closes = [];
  const seen = [];
  client.on('close', (c) => closes.push(c));
  client.on('reconnecting', (r) => seen.push(r));
  const reason = 'service restart; retry_ms=250';
  const check = sleep(120).then(() => env.sockets.length);
  const took = closeAndTimeReconnect(env, 1012, reason);
  assert.equal(await check, 1, 'reconnected before retry_ms');
  assert.ok(await took >= 249, `reconnected after ${await took} ms`);
  assert.deepEqual(closes, [{ code: 1012, reason, willReconnect: true }]);
  assert.deepEqual(seen, [{ attempt: 1, delayMs: 250 }]);
  socket().open();
  assert.deepEqual(socket().sentOfType('subscribe').map((f) => f.topic), ['sensors/#']);
  assert.equal(client.state, 'open');
  client.close();
});

test('1012: retry_ms is capped at 2 minutes, and close() still cancels the wait', async (t) => {
  const env = setupFor(t);
  const { client, socket } = env;
  socket().open();
  const seen = [];
  client.on('reconnecting', (r) => seen.push(r.delayMs));
  socket().serverClose(1012, 'service restart; retry_ms=86400000');
  assert.deepEqual(seen, [120000]);
  await sleep(60);
  assert.equal(env.sockets.length, 1);
  assert.equal(client.state, 'reconnecting');
  client.close();
  assert.equal(client.state, 'closed');
});

test('1012 without a hint: a random delay of 0.5 to 5 s of its own, never at once', async (t) => {
  for (const [random, expected] of [[0, 500], [0.5, 2750], [1, 5000]]) {
    for (const reason of ['service restart', '', 'retry_ms=soon', 'xretry_ms=5', 'retry_ms=5x']) {
      const { client, socket } = setupFor(t, { random: () => random });
      socket().open();
      const seen = [];
      client.on('reconnecting', (r) => seen.push(r));
      socket().serverClose(1012, reason);
      assert.deepEqual(seen, [{ attempt: 1, delayMs: expected }], `random ${random}, reason ${JSON.stringify(reason)}`);
      client.close();
    }
  }
  // And the timer is that delay: nothing before 500 ms.
  const env = setupFor(t, { random: () => 0 });
  env.socket().open();
  const check = sleep(300).then(() => env.sockets.length);
  const took = closeAndTimeReconnect(env, 1012, 'service restart');
  assert.equal(await check, 1, 'reconnected at once after a 1012 without a hint');
  assert.ok(await took >= 499, `reconnected after ${await took} ms`);
  env.client.close();
});

test('1012 resets the backoff: it is a planned restart, not one more failure', async (t) => {
  const env = setupFor(t, { reconnect: { initialDelayMs: 10, maxDelayMs: 1000, factor: 2, jitter: 0 } });
  const { client } = env;
  const seen = [];
  client.on('reconnecting', (r) => seen.push(r));
  // Three failed attempts (the bridge is down), then one that the bridge, draining, closes with
  // 1012 before anything else, then one more failure.
  for (let i = 0; i < 3; i++) await closeAndTimeReconnect(env, 1006, '');
  await closeAndTimeReconnect(env, 1012, 'service restart; retry_ms=30');
  await closeAndTimeReconnect(env, 1006, '');
  assert.deepEqual(seen, [
    { attempt: 1, delayMs: 10 }, { attempt: 2, delayMs: 20 }, { attempt: 3, delayMs: 40 },
    { attempt: 1, delayMs: 30 }, { attempt: 2, delayMs: 20 },
  ]);
  // Every other close keeps its meaning: 1008 still ends reconnecting.
  env.socket().serverClose(1008, 'policy');
  assert.equal(client.state, 'closed');
});

test('1012 before the welcome: no fallback to another transport, the WebSocket not remembered broken', async (t) => {
  const storage = new MemoryStorage();
  const fetches = [];
  const env = setupFor(t, {
    transports: ['websocket', 'sse', 'polling'],
    EventSource: class { constructor(url) { fetches.push(url); } close() {} },
    fetch: async (url) => { fetches.push(url); throw new TypeError('offline'); },
    sessionStorage: storage,
  });
  const { client, socket } = env;
  const closes = [];
  const seen = [];
  client.on('close', (c) => closes.push(c));
  client.on('reconnecting', (r) => seen.push(r));
  assert.equal(new URL(socket().url).searchParams.get('_wsb'), 'welcome');
  socket().serverClose(1012, 'service restart; retry_ms=40');
  await sleep(10);
  assert.deepEqual(fetches, [], 'fell back to SSE or polling after a 1012');
  assert.deepEqual(closes, [{ code: 1012, reason: 'service restart; retry_ms=40', willReconnect: true }]);
  assert.deepEqual(seen, [{ attempt: 1, delayMs: 40 }]);
  assert.equal(storage.map.size, 0);
  await waitFor(() => env.sockets.length === 2, 'the reconnect on a WebSocket');
  client.close();
});
