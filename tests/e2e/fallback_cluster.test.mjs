// Two wsbridge instances behind Debian's haproxy in round robin, no sticky sessions (#16.3): a
// fallback session lives on the instance that opened it, and every later request of it (POSTs,
// polls, resumed streams) that the balancer sends to the other instance is forwarded to the owner
// ([fallback] peers, the token names the owner). Without forwarding about half of them would get
// 404. Also wsbridge.js in Chromium, long-polling through the balancer on an MQTT route.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  Broker, Bridge, Child, MosquittoSub, freePort, mosquittoPub, removeDir,
  tempDir, waitFor, within,
} from './mqtt_passthrough_support.mjs';
import { copyWsbridgeLibrary } from './wsbridge_library.mjs';
import {
  request, json, SseStream, encodeBody, decodeBody, launchChromium, mqttRouteToml,
} from './fallback_support.mjs';

let dir;
let broker;
const bridges = [];
let haproxy;
let lbPort;

const SECRET = 'a-fallback-secret-shared-by-the-cluster';

function bridgeToml(name, port, peers) {
  return `instance_id = "${name}"
[fallback]
secret = "${SECRET}"
poll_timeout = "3s"
peers = { ${peers.map(([n, p]) => `"${n}" = "http://127.0.0.1:${p}"`).join(', ')} }
[[listeners]]
address = "127.0.0.1"
port = ${port}
[[routes]]
path = "/echo"
adapter = "echo"
${mqttRouteToml(broker.port)}`;
}

before(async () => {
  dir = tempDir();
  broker = new Broker(dir, await freePort());
  await broker.start();
  const ports = [await freePort(), await freePort()];
  const names = ['node-a', 'node-b'];
  for (let i = 0; i < 2; ++i) {
    const sub = path.join(dir, names[i]);
    mkdirSync(sub);
    // (instance_id belongs to [server], which Bridge writes first: the TOML starts inside it.)
    const b = new Bridge(sub, ports[i], bridgeToml(names[i], ports[i], [[names[1 - i], ports[1 - i]]]));
    copyWsbridgeLibrary(path.join(sub, 'static'));
    await b.start();
    bridges.push(b);
  }
  lbPort = await freePort();
  const conf = path.join(dir, 'haproxy.cfg');
  writeFileSync(conf, `
global
  maxconn 512
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-server-close
frontend front
  bind 127.0.0.1:${lbPort}
  default_backend bridges
backend bridges
  balance roundrobin
  server a 127.0.0.1:${ports[0]}
  server b 127.0.0.1:${ports[1]}
`);
  haproxy = new Child('/usr/sbin/haproxy', ['-db', '-f', conf]);
  await waitFor(async () => {
    if (!haproxy.running) throw new Error(`haproxy exited: ${haproxy.output}`);
    return (await fetch(`http://127.0.0.1:${lbPort}/healthz`).catch(() => null))?.ok;
  }, 'haproxy');
});

after(async () => {
  await haproxy?.stop();
  for (const b of bridges) await b.stop();
  await broker?.stop();
  if (dir) removeDir(dir);
});

const post = (tok, first, records) =>
  request(lbPort, 'POST', `/_wsbridge/send/echo?s=${encodeURIComponent(tok)}`, { body: encodeBody(first, records) });

test('SSE on one instance, POSTs through the balancer to both: every one applied once, in order', async () => {
  const sse = new SseStream(lbPort, '/_wsbridge/sse/echo');
  await sse.opened;
  await sse.until((e) => e.length >= 1, 5000, 'the welcome');
  const tok = sse.controls[0].session;
  for (let i = 1; i <= 12; ++i) {
    const res = await post(tok, i, [{ payload: `m${i}` }]);
    assert.equal(res.status, 200, `POST ${i}: ${res.body}`);
    assert.deepEqual(json(res), { next: i + 1 });
  }
  // A retry that lands on the other instance is still applied once.
  assert.deepEqual(json(await post(tok, 12, [{ payload: 'm12' }])), { next: 13 });
  assert.deepEqual(json(await post(tok, 12, [{ payload: 'm12' }])), { next: 13 });
  await sse.until((e) => e.filter((x) => x.event !== 'control').length >= 12, 5000, 'twelve echoes');
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(sse.messages.map((m) => m.payload.toString()), Array.from({ length: 12 }, (_, i) => `m${i + 1}`));
  // A resumed stream that lands on the other instance is forwarded too, from where it broke.
  sse.close();
  for (let k = 0; k < 2; ++k) {
    const again = new SseStream(lbPort, `/_wsbridge/sse/echo?s=${encodeURIComponent(tok)}&last=10`);
    await again.opened;
    await again.until((e) => e.filter((x) => x.event !== 'control').length >= 2, 5000, 'the resume');
    assert.deepEqual(again.messages.map((m) => m.id), [11, 12]);
    again.close();
    await new Promise((r) => setTimeout(r, 200));
  }
});

test('long-polling through the balancer: polls and POSTs reach the owner wherever they land', async () => {
  const opened = await request(lbPort, 'GET', '/_wsbridge/poll/echo');
  const tok = JSON.parse(decodeBody(opened.body).records[0].payload).session;
  let last = 0;
  for (let i = 1; i <= 6; ++i) {
    assert.equal((await post(tok, i, [{ payload: `p${i}` }])).status, 200);
    const got = decodeBody((await request(lbPort, 'GET', `/_wsbridge/poll/echo?s=${encodeURIComponent(tok)}&last=${last}`)).body);
    assert.equal(got.first, last + 1);
    assert.deepEqual(got.records.map((r) => r.payload.toString()), [`p${i}`]);
    last += got.records.length;
  }
});

test('an instance never forwards a forwarded request again, nor to an instance it does not know', async () => {
  const opened = await request(lbPort, 'GET', '/_wsbridge/poll/echo');
  const tok = JSON.parse(decodeBody(opened.body).records[0].payload).session;
  const owner = JSON.parse(decodeBody(opened.body).records[0].payload).conn;
  assert.ok(owner > 0);
  // Straight to each instance, marked as forwarded already: only the owner answers.
  const statuses = [];
  for (const b of bridges) {
    const res = await request(b.port, 'POST', `/_wsbridge/send/echo?s=${encodeURIComponent(tok)}`,
      { body: encodeBody(1, [{ payload: 'x' }]), headers: { 'x-wsbridge-forwarded': 'test' } });
    statuses.push(res.status);
  }
  assert.deepEqual(statuses.sort(), [200, 404]);
});

test('wsbridge.js in Chromium, long-polling through the balancer to both instances, on an MQTT route', async () => {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${lbPort}/`);
    await page.addScriptTag({ type: 'module',
      content: "import { connect } from '/wsbridge.js'; window.wsbridgeConnect = connect;" });
    await page.waitForFunction(() => typeof window.wsbridgeConnect === 'function');
    await within(page.evaluate(async (port) => {
      window.received = [];
      window.client = window.wsbridgeConnect(`ws://127.0.0.1:${port}/mqtt`, { forceTransport: 'polling' });
      await new Promise((resolve, reject) => {
        window.client.on('open', resolve);
        window.client.on('error', (e) => reject(new Error(String(e?.message ?? e))));
      });
      await window.client.subscribe('sensors/cluster/#', (m) => window.received.push(m.payload.n), { qos: 1 });
    }, lbPort), 20000, 'connect and subscribe');
    for (let i = 0; i < 10; ++i) await mosquittoPub(broker, `sensors/cluster/${i}`, `{"n":${i}}`, { qos: 1 });
    await page.waitForFunction(() => window.received.length >= 10, null, { timeout: 20000 });
    assert.deepEqual(await page.evaluate(() => window.received), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const sub = await MosquittoSub.start(broker, 'sensors/cluster-up');
    try {
      for (let i = 0; i < 4; ++i) {
        await within(page.evaluate((n) => window.client.publish('sensors/cluster-up', { n }, { qos: 1 }), i),
          10000, 'publish');
      }
      await waitFor(() => sub.messages.length >= 4, 'the publishes at the broker');
      assert.deepEqual(sub.messages.map((m) => JSON.parse(m.payload.toString()).n), [0, 1, 2, 3]);
    } finally {
      await sub.stop();
    }
  } finally {
    await browser.close();
  }
});
