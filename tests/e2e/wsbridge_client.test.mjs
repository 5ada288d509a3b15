// Unit tests of web/wsbridge.js with a fake WebSocket (no network): subscriptions, messages,
// publishes, requests and events. Reconnects, backoff, keep-alive and tokens are in
// wsbridge_client_reconnect.test.mjs, the fake in wsbridge_client_fake.mjs.
//   node --test tests/e2e/wsbridge_client.test.mjs tests/e2e/wsbridge_client_reconnect.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { topicMatches, WsbridgeError } from '../../web/wsbridge.js';
import { setup } from './wsbridge_client_fake.mjs';

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
