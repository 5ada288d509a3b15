// Two wsbridge instances behind Debian's haproxy in round robin, no sticky sessions (#16.3): a
// fallback session lives on the instance that opened it, and every later request of it (POSTs,
// polls, resumed streams) that the balancer sends to the other instance is forwarded to the owner
// ([fallback] peers, the token names the owner). Without forwarding about half of them would get
// 404. Also wsbridge.js in Chromium, long-polling through the balancer on an MQTT route.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  Broker, Bridge, Child, MosquittoSub, freePort, freeze, mosquittoPub, removeDir,
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
[limits]
handshake_timeout = "3s"
[fallback]
secret = "${SECRET}"
poll_timeout = "3s"
heartbeat = "2s"
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

test('each instance warns at start that its peer\'s address is not a trusted proxy, naming it', () => {
  // (The address was printed from freed memory.)
  assert.match(bridges[0].log, /\[fallback\] peers: node-b \(127\.0\.0\.1\) is not in \[server\] trusted_proxies/);
  assert.match(bridges[1].log, /\[fallback\] peers: node-a \(127\.0\.0\.1\) is not in \[server\] trusted_proxies/);
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

// A poll session straight on instance `b`: its token and connection number.
async function pollSessionOn(b) {
  const opened = await request(b.port, 'GET', '/_wsbridge/poll/echo');
  const welcome = JSON.parse(decodeBody(opened.body).records[0].payload);
  return { token: welcome.session, conn: welcome.conn };
}

// A POST whose body never ends: it holds one of its session's places on the instance it reached.
function heldPost(port, token) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(`POST /_wsbridge/send/echo?s=${encodeURIComponent(token)} HTTP/1.1\r\n` +
        'Host: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n1\n');
      resolve(socket);
    });
    socket.on('error', reject);
  });
}

test('another instance\'s session with the same number does not take this one\'s POST places', async () => {
  // Connection numbers are per instance: open sessions on both until two share one.
  let [a, b] = [await pollSessionOn(bridges[0]), await pollSessionOn(bridges[1])];
  for (let i = 0; i < 200 && a.conn !== b.conn; ++i) {
    if (a.conn < b.conn) a = await pollSessionOn(bridges[0]);
    else b = await pollSessionOn(bridges[1]);
  }
  assert.equal(a.conn, b.conn, 'no two sessions with the same number');
  // Four held POSTs for node-a's session, through node-b: that session's places there.
  const held = await Promise.all(Array.from({ length: 4 }, () => heldPost(bridges[1].port, a.token)));
  await new Promise((r) => setTimeout(r, 300));
  try {
    const res = await request(bridges[1].port, 'POST', `/_wsbridge/send/echo?s=${encodeURIComponent(b.token)}`,
      { body: encodeBody(1, [{ payload: 'mine' }]) });
    assert.equal(res.status, 200, `node-b's own session ${b.conn}: ${res.status} ${res.body}`);
    const fifth = await request(bridges[1].port, 'POST', `/_wsbridge/send/echo?s=${encodeURIComponent(a.token)}`,
      { body: encodeBody(1, [{ payload: 'x' }]) });
    assert.equal(fifth.status, 429, 'the forwarded session\'s own limit still holds');
  } finally {
    held.forEach((socket) => socket.destroy());
  }
});

test('a request forwarded to an owner that stops answering gets 504, not a wait without end', async () => {
  const a = await pollSessionOn(bridges[0]);
  await freeze(bridges[0].child.proc);
  try {
    const started = Date.now();
    const res = await request(bridges[1].port, 'POST', `/_wsbridge/send/echo?s=${encodeURIComponent(a.token)}`,
      { body: encodeBody(1, [{ payload: 'x' }]) });
    assert.equal(res.status, 504, String(res.body));
    assert.match(String(res.body), /did not answer within/);
    // (poll_timeout 3 s or heartbeat 2 s, plus handshake_timeout 3 s: about 6 s.)
    assert.ok(Date.now() - started < 20000, `answered after ${Date.now() - started} ms`);
  } finally {
    bridges[0].child.proc.kill('SIGCONT');
  }
  const again = await request(bridges[1].port, 'POST', `/_wsbridge/send/echo?s=${encodeURIComponent(a.token)}`,
    { body: encodeBody(1, [{ payload: 'x' }]) });
  assert.equal(again.status, 200, 'the owner, running again, is reached again');
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
