// Many instances, one system (#19, label cluster): three wsbridge instances (node-a and node-b on
// broker A, node-c on broker B, the brokers bridged to each other) behind Debian's haproxy in round
// robin with health checks on /healthz; the harness is cluster_support.mjs. This file: the
// balancer spreading requests, fan-out to clients on every instance from either broker, an
// instance killed with SIGKILL (its wsbridge.js pages in Chromium reconnect elsewhere and
// resubscribe) and restarted on its port, pushes and closes by the admin API across the cluster,
// and a SIGTERM drain (out of the balancer first, then 1012 with retry_ms, which the pages honour).
// The control plane's defences (forgeries, replays, control topics refused, ?scope=cluster) are
// cluster_control.test.mjs; a rolling restart under QoS 1 traffic is cluster_restart.test.mjs.
//   WSBRIDGE_BINARY=build/release/wsbridge node --test tests/e2e/cluster.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mosquittoPub, token, waitFor, within } from './mqtt_passthrough_support.mjs';
import { launchChromium, request } from './fallback_support.mjs';
import {
  Cluster, JsonClient, clusterToml, everyPageGetsWhatIsPublished, openPages, pageState,
} from './cluster_support.mjs';

let cluster;

// A drain waits DRAIN_DELAY_MS before it closes its clients: longer than haproxy takes to see
// /healthz fail twice 500 ms apart, so that the instance is out of the balancer first. Each client
// is told to come back within [SPREAD_MS / 10, SPREAD_MS].
const DRAIN_DELAY_MS = 2500;
const SPREAD_MS = 3000;
// How long GET /api/v1/connections?scope=cluster waits for the other instances.
const REQUEST_TIMEOUT_MS = 2000;

before(async () => {
  cluster = await Cluster.start({
    serverToml: () => `drain_delay = "${DRAIN_DELAY_MS}ms"\nreconnect_spread = "${SPREAD_MS}ms"`,
    extraToml: (node, c) => clusterToml(node, c, { extra: `request_timeout = "${REQUEST_TIMEOUT_MS}ms"\n` }),
  });
});
after(async () => { await cluster?.stop(); });

test('the balancer spreads requests over the three instances, and sees them healthy', async () => {
  assert.deepEqual(await cluster.lb.status(), { 'node-a': 'UP', 'node-b': 'UP', 'node-c': 'UP' });
  const seen = [];
  for (let i = 0; i < 6; i++) {
    const res = await request(cluster.lb.port, 'GET', '/healthz');
    assert.equal(res.status, 200);
    seen.push(JSON.parse(res.body.toString()).instance);
  }
  assert.deepEqual([...new Set(seen)].sort(), ['node-a', 'node-b', 'node-c'], `answered by ${seen}`);
});

test('clients on all three instances, directly and through the balancer, get what is published on either broker', async () => {
  const clients = [];
  try {
    for (const node of cluster.nodes) {
      for (let i = 0; i < 2; i++) clients.push(await JsonClient.open(node.url('/mqtt')));
    }
    const direct = await cluster.waitForConnections(6);
    assert.deepEqual(direct, { 'node-a': 2, 'node-b': 2, 'node-c': 2 });
    for (let i = 0; i < 6; i++) clients.push(await JsonClient.open(cluster.lb.url('/mqtt')));
    const all = await cluster.waitForConnections(12);
    for (const [name, n] of Object.entries(all)) {
      assert.ok(n > direct[name], `no client through the balancer on ${name}: ${JSON.stringify(all)}`);
    }
    await Promise.all(clients.map((c) => c.subscribe('sensors/cluster/#', 1)));

    const published = [];
    for (let i = 0; i < 5; i++) {
      for (const broker of [cluster.brokers.A, cluster.brokers.B]) {
        const topic = `sensors/cluster/from-${broker.name}`;
        await mosquittoPub(broker, topic, JSON.stringify({ n: i, via: broker.name }), { qos: 1 });
        published.push(`${broker.name}${i}`);
      }
    }
    const got = (c) => c.messages.map((m) => `${m.payload.via}${m.payload.n}`);
    await waitFor(() => clients.every((c) => got(c).length >= published.length),
      'every message at every client', 10000).catch(() => {});
    await new Promise((r) => setTimeout(r, 300)); // anything twice would have come by now
    for (const [i, c] of clients.entries()) {
      const mine = got(c);
      // Each broker's messages in their order, each once, wherever the client is.
      assert.deepEqual(mine.filter((x) => x[0] === 'A'), published.filter((x) => x[0] === 'A'), `client ${i} (${c.url})`);
      assert.deepEqual(mine.filter((x) => x[0] === 'B'), published.filter((x) => x[0] === 'B'), `client ${i} (${c.url})`);
    }
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
  await cluster.waitForConnections(0);
});

test('an instance killed with SIGKILL: its wsbridge.js pages reconnect through the balancer to the others and resubscribe', async (t) => {
  const topic = 'sensors/cluster/kill/#';
  const browser = await launchChromium();
  try {
    const { pages, victim, victims } = await openPages(t, cluster, browser, topic);
    await victim.kill();
    await cluster.lb.waitForStatus(victim.name, 'DOWN', 5000);

    // Its pages saw the connection die and opened a new one; the others saw nothing.
    await waitFor(async () => {
      for (const p of victims) if ((await pageState(p)).opens < 2) return false;
      return true;
    }, 'the killed instance\'s pages to reconnect', 15000);
    for (const p of pages) {
      const s = await pageState(p);
      const mine = victims.includes(p);
      assert.equal(s.state, 'open');
      assert.equal(s.transport, 'websocket');
      assert.equal(s.opens, mine ? 2 : 1, JSON.stringify(s));
      assert.equal(s.closes.length, mine ? 1 : 0, JSON.stringify(s));
    }
    const counts = await cluster.waitForConnections(pages.length);
    assert.equal(counts[victim.name], undefined);

    // Resubscribed: what is published now, on either broker, reaches every page.
    await everyPageGetsWhatIsPublished(cluster, pages, 'sensors/cluster/kill');
  } finally {
    await browser.close();
  }
  await cluster.waitForConnections(0);
});

test('an instance restarted on its own port: the balancer takes it back, and its clients get messages from the other broker', async () => {
  const node = cluster.nodes.find((n) => !n.running) ?? cluster.node('node-c');
  if (node.running) await node.kill();
  await cluster.lb.waitForStatus(node.name, 'DOWN', 5000);
  await node.start();
  await cluster.lb.waitForStatus(node.name, 'UP', 5000);
  const seen = new Set();
  for (let i = 0; i < 6; i++) seen.add(JSON.parse((await request(cluster.lb.port, 'GET', '/healthz')).body.toString()).instance);
  assert.ok(seen.has(node.name), `the balancer sent nothing to ${node.name}: ${[...seen]}`);
  const client = await JsonClient.open(node.url('/mqtt'));
  try {
    await client.subscribe('sensors/cluster/restart', 1);
    const other = node.brokerName === 'A' ? cluster.brokers.B : cluster.brokers.A;
    await mosquittoPub(other, 'sensors/cluster/restart', '"back"', { qos: 1 });
    await waitFor(() => client.messages.length >= 1, `the message at ${node.name}`, 5000);
    assert.deepEqual(client.messages.map((m) => m.payload), ['back']);
  } finally {
    await client.close();
  }
});

test('the admin API across the cluster: a push by user reaches that user on every instance, by id only its owner, and a close by id reaches the owner', async () => {
  for (const n of cluster.nodes) if (!n.running) await n.start();
  await cluster.waitForControlPlane();
  const as = (user, node) => JsonClient.open(`${node.url('/mqtt')}?access_token=${token(user)}`);
  const [a, b, c] = ['node-a', 'node-b', 'node-c'].map((n) => cluster.node(n));
  const aliceC = await as('alice', c);
  const aliceB = await as('alice', b);
  const bob = await as('bob', a);
  const clients = [aliceC, aliceB, bob];
  const pushes = (client) => client.frames.filter((f) => f.type === 'push').map((f) => f.n);
  try {
    await cluster.waitForConnections(3);
    const byUser = await a.admin('POST', '/api/v1/push', { user: 'alice', data: { type: 'push', n: 1 } });
    assert.equal(byUser.status, 200, String(byUser.body));
    await waitFor(() => pushes(aliceC).length >= 1 && pushes(aliceB).length >= 1, 'the push at both of alice\'s connections', 5000);

    const id = (await c.connections('/mqtt')).find((x) => x.user === 'alice').id;
    assert.match(String(id), /@node-c$/);
    const byId = await a.admin('POST', '/api/v1/push', { connection: id, data: { type: 'push', n: 2 } });
    assert.ok([200, 202].includes(byId.status), `${byId.status} ${byId.body}`);
    await waitFor(() => pushes(aliceC).length >= 2, `the push to ${id}`, 5000);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(clients.map(pushes), [[1, 2], [1], []]);

    const other = (await b.connections('/mqtt')).find((x) => x.user === 'alice').id;
    const closed = await a.admin('DELETE', `/api/v1/connections/${encodeURIComponent(other)}?code=4001&reason=bye`);
    assert.ok([200, 202, 204].includes(closed.status), `${closed.status} ${closed.body}`);
    await waitFor(() => aliceB.closed, `the close of ${other}`, 5000);
    assert.deepEqual(aliceB.closed, { code: 4001, reason: 'bye' });
    assert.equal(aliceC.closed, null);
  } finally {
    await Promise.all(clients.map((x) => x.close()));
  }
  await cluster.waitForConnections(0);
});

test('SIGTERM drains: out of the balancer first, then every client closed with 1012 and its own retry_ms, which wsbridge.js pages wait before they come back elsewhere', async (t) => {
  for (const n of cluster.nodes) if (!n.running) await n.start();
  for (const n of cluster.nodes) await cluster.lb.waitForStatus(n.name, 'UP', 5000);
  const browser = await launchChromium();
  const direct = [];
  try {
    const { pages, victim, victims } = await openPages(t, cluster, browser, 'sensors/cluster/drain/#');
    for (let i = 0; i < 4; i++) direct.push(await JsonClient.open(victim.url('/mqtt')));

    const t0 = Date.now();
    victim.signal('SIGTERM');
    // At once: /healthz says 503 and new clients are refused...
    await waitFor(async () => (await victim.healthz().catch((e) => e)).status === 503,
      `${victim.name}'s /healthz to answer 503`, 1000);
    await assert.rejects(JsonClient.open(victim.url('/mqtt')), /503/);
    // ...so haproxy takes it out before any of its clients is closed.
    await cluster.lb.waitForStatus(victim.name, 'DOWN', DRAIN_DELAY_MS);
    assert.deepEqual(direct.map((c) => c.closed), direct.map(() => null),
      `a client closed before haproxy took ${victim.name} out (${Date.now() - t0} ms)`);

    // Then every client is closed with 1012, each told its own time to come back.
    await waitFor(() => direct.every((c) => c.closed), 'the drained clients closed', DRAIN_DELAY_MS + 3000);
    assert.ok(Date.now() - t0 >= DRAIN_DELAY_MS - 100, `closed after ${Date.now() - t0} ms`);
    const hints = direct.map((c) => {
      assert.equal(c.closed.code, 1012, JSON.stringify(c.closed));
      const m = /^service restart; retry_ms=(\d+)$/.exec(c.closed.reason);
      assert.ok(m, `the reason: ${JSON.stringify(c.closed.reason)}`);
      const ms = Number(m[1]);
      assert.ok(ms >= SPREAD_MS / 10 && ms <= SPREAD_MS, `retry_ms=${ms}`);
      return ms;
    });
    assert.ok(new Set(hints).size > 1, `every client got the same retry_ms: ${hints}`);

    // Its pages waited what they were told, then came back on the other instances.
    await waitFor(async () => {
      for (const p of victims) if ((await pageState(p)).opens < 2) return false;
      return true;
    }, 'the drained instance\'s pages to come back', SPREAD_MS + 10000);
    for (const p of pages) {
      const s = await pageState(p);
      assert.equal(s.state, 'open');
      if (!victims.includes(p)) {
        assert.equal(s.opens, 1, JSON.stringify(s.events));
        continue;
      }
      const close = s.events.find((e) => e.name === 'close');
      const retry = s.events.find((e) => e.name === 'reconnecting');
      const reopen = s.events.filter((e) => e.name === 'open')[1];
      assert.equal(close.code, 1012, JSON.stringify(s.events));
      const hint = Number(/retry_ms=(\d+)/.exec(close.reason)?.[1]);
      assert.ok(hint >= SPREAD_MS / 10 && hint <= SPREAD_MS, JSON.stringify(close));
      assert.deepEqual([retry.attempt, retry.delayMs], [1, hint], JSON.stringify(s.events));
      assert.ok(reopen.at - close.at >= hint - 5, `back after ${reopen.at - close.at} ms, told ${hint}`);
      assert.equal(s.events.filter((e) => e.name === 'close').length, 1, JSON.stringify(s.events));
    }
    const counts = await within(victim.exited.then(() => cluster.waitForConnections(pages.length)),
      10000, `${victim.name} to exit`);
    assert.equal(counts[victim.name], undefined);
    await everyPageGetsWhatIsPublished(cluster, pages, 'sensors/cluster/drain');
  } finally {
    await Promise.all(direct.map((c) => c.close()));
    await browser.close();
  }
  await cluster.waitForConnections(0);
});
