// A rolling restart of the cluster (#19, label cluster) while QoS 1 messages are published: no
// message is lost for an MQTT client that stays subscribed. Three wsbridge instances behind haproxy
// over two bridged mosquittos (cluster_support.mjs); the clients are mqtt.js over the MQTT
// pass-through route /mqtt-pass, whose upstream is broker A on every instance.
//   WSBRIDGE_BINARY=build/release/wsbridge node --test tests/e2e/cluster_restart.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { OBSERVER, connectMqtt, endClient, sleep, waitFor, within } from './mqtt_passthrough_support.mjs';
import { Cluster, clusterToml, defaultRoutesToml, passthroughRouteToml } from './cluster_support.mjs';

let cluster;

// Longer than haproxy takes to see /healthz fail twice 500 ms apart: out of the balancer first.
const DRAIN_DELAY_MS = 2000;
const CLIENTS = 6;
const PUBLISH_EVERY_MS = 20;

before(async () => {
  cluster = await Cluster.start({
    serverToml: () => `drain_delay = "${DRAIN_DELAY_MS}ms"\nreconnect_spread = "1s"`,
    // A persistent session lives on one broker: bridged mosquittos do not share sessions, so
    // every instance's pass-through route goes to broker A, where the clients' sessions are. (With
    // a broker cluster such as EMQX, VerneMQ or HiveMQ, each instance would use its nearest node
    // and the cluster would move the session.)
    routesToml: (node, c) => defaultRoutesToml(node) + passthroughRouteToml(c, { broker: 'A' }),
    extraToml: clusterToml,
  });
});
after(async () => { await cluster?.stop(); });

test('a rolling restart of all three instances while QoS 1 messages are published: every persistent-session client through the balancer gets every message', async (t) => {
  const topic = 'sensors/roll';
  const clients = [];
  let publisher;
  try {
    // MQTT 5 and 3.1.1 in turn; persistent sessions (clean: false, with an expiry for MQTT 5),
    // QoS 1; mqtt.js reconnects 500 ms after a close, through the balancer.
    for (let i = 0; i < CLIENTS; i++) {
      const v5 = i % 2 === 0;
      const m = await connectMqtt(cluster.lb.url('/mqtt-pass'), {
        protocolVersion: v5 ? 5 : 4, clientId: `roller-${i}`, clean: false, reconnectPeriod: 500,
        ...(v5 ? { properties: { sessionExpiryInterval: 600 } } : {}),
      });
      m.name = `roller-${i} (MQTT ${v5 ? 5 : '3.1.1'})`;
      m.connects = [m.connack];
      m.closes = 0;
      m.on('connect', (connack) => m.connects.push(connack));
      m.on('close', () => { m.closes++; });
      await m.subscribeAsync(topic, { qos: 1 });
      clients.push(m);
    }
    const spread = await cluster.waitForConnections(CLIENTS, '/mqtt-pass');
    t.diagnostic(`clients per instance: ${JSON.stringify(spread)}`);

    // The publisher, on broker B: every message crosses the bridge to A. QoS 1, numbered.
    publisher = await new Promise((resolve, reject) => {
      const p = mqtt.connect(`mqtt://127.0.0.1:${cluster.brokers.B.port}`, {
        username: OBSERVER.user, password: OBSERVER.password, clientId: 'roll-publisher', reconnectPeriod: 0,
      });
      p.once('connect', () => resolve(p));
      p.once('error', reject);
    });
    let next = 0;
    const acked = new Set();
    const failed = [];
    const timer = setInterval(() => {
      const n = next++;
      publisher.publish(topic, String(n), { qos: 1 }, (err) => (err ? failed.push(`${n}: ${err.message}`) : acked.add(n)));
    }, PUBLISH_EVERY_MS);

    const t0 = Date.now();
    const steps = [];
    try {
      await waitFor(() => clients.every((m) => m.received.length > 0), 'the first messages at every client', 5000);
      for (const node of cluster.nodes) {
        const held = (await node.connections('/mqtt-pass')).length;
        const s0 = Date.now();
        node.signal('SIGTERM');
        await waitFor(async () => (await node.healthz().catch((e) => e)).status === 503,
          `${node.name}'s /healthz to answer 503`, 1000);
        // (That this comes before the 1012s is e2e.cluster's drain test; here, a loaded machine
        // may take longer.)
        await cluster.lb.waitForStatus(node.name, 'DOWN', DRAIN_DELAY_MS + 3000);
        await within(node.exited, DRAIN_DELAY_MS + 5000, `${node.name} to exit`);
        await node.start();
        await cluster.lb.waitForStatus(node.name, 'UP', 5000);
        steps.push(`${node.name} (${held} clients) ${Date.now() - s0} ms`);
      }
      await sleep(1000);
    } finally {
      clearInterval(timer);
    }
    const published = next;
    await waitFor(() => acked.size + failed.length === published, 'the publisher\'s PUBACKs', 5000);
    assert.deepEqual(failed, []);
    t.diagnostic(`restarted ${steps.join(', ')}; ${published} messages in ${Date.now() - t0} ms`);

    // Every client gets every number: late, twice maybe (at least once), but none missing.
    const numbers = (m) => new Set(m.received.filter((x) => x.topic === topic).map((x) => Number(x.payload.toString())));
    await waitFor(() => clients.every((m) => numbers(m).size === published), 'every message at every client', 15000)
      .catch(() => {});
    const report = clients.map((m) => {
      const got = numbers(m);
      const missing = [];
      for (let n = 0; n < published; n++) if (!got.has(n)) missing.push(n);
      // (Each WebSocket mqtt.js opened, and how the last one ended: when a client never came back,
      // this says whether it tried again and what it met.)
      const last = m.sockets.at(-1);
      return { client: m.name, received: m.received.length, missing: missing.length, firstMissing: missing.slice(0, 10),
        closes: m.closes, sessionPresent: m.connects.slice(1).map((c) => c.sessionPresent),
        errors: m.errors, websockets: m.sockets.length, lastSocket: { readyState: last?.readyState, close: last?.closeInfo, error: last?.lastError?.message } };
    });
    t.diagnostic(JSON.stringify(report));
    for (const r of report) {
      // Each client was closed by a drain at least once (else the test proved nothing) and found
      // its session again every time it came back.
      assert.ok(r.closes >= 1, `${r.client} was never disconnected: ${JSON.stringify(r)}`);
      assert.equal(r.missing, 0, `${r.client} lost messages: ${JSON.stringify(r)}`);
      assert.ok(r.sessionPresent.length >= 1 && r.sessionPresent.every(Boolean), `${r.client}: ${JSON.stringify(r)}`);
    }
  } finally {
    await endClient(publisher);
    await Promise.all(clients.map(endClient));
  }
});
