// The fallback transports in Chromium behind hostile proxies (#16.5), everything real and started
// here: Debian's haproxy refusing WebSocket upgrades, Debian's nginx holding whole responses (it
// ignores X-Accel-Buffering and buffers 1 MiB) and passing no Upgrade, and a proxy of the tests'
// own that answers 101 and then forwards nothing. Through each, web/wsbridge.js in the page
// subscribes to an MQTT topic, receives mosquitto_pub messages, publishes to mosquitto_sub and
// calls request() through an http route; the transport it ends up on is checked, and behind the
// stalling proxy a forced switch (the proxy starts passing upgrades, the client moves back to a
// WebSocket) in the middle of a QoS 1 stream loses and duplicates nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
  Broker, Bridge, Child, MosquittoSub, freePort, mosquittoPub, removeDir, sourceDir,
  tempDir, waitFor, within,
} from './mqtt_passthrough_support.mjs';
import { copyWsbridgeLibrary } from './wsbridge_library.mjs';
import { HostileProxy } from './fallback_client_support.mjs';
import { launchChromium, mqttRouteToml } from './fallback_support.mjs';

let dir;
let broker;
let backend;
let bridge;
let browser;
const proxies = {};

function startBackend() {
  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ order: req.url, method: req.method }));
      });
    });
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

// nginx as a proxy that holds whole responses: an SSE stream reaches the browser only when it
// ends. It also drops Upgrade (nginx passes it only when told to), so WebSockets fail too. It
// speaks HTTP/1.0 to wsbridge (nginx's default), so the stream is delimited by its connection's
// close, which this nginx holds whole; a chunked stream (HTTP/1.1 upstream) it would pass on as
// each chunk comes, buffering or not.
async function startNginx(port, target) {
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(conf, `
user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx.error.log warn;
daemon off;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://127.0.0.1:${target};
      proxy_buffering on;
      proxy_ignore_headers X-Accel-Buffering;
      proxy_buffer_size 1m;
      proxy_buffers 4 1m;
      proxy_busy_buffers_size 2m;
      proxy_read_timeout 60s;
    }
  }
}
`);
  const child = new Child('/usr/sbin/nginx', ['-c', conf, '-p', dir]);
  await waitFor(async () => {
    if (!child.running) throw new Error(`nginx exited: ${child.output}`);
    return (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.ok;
  }, 'nginx');
  return { port, stop: () => child.stop('SIGQUIT'), child };
}

// haproxy refusing every WebSocket upgrade with 403, passing everything else.
async function startHaproxy(port, target) {
  const conf = path.join(dir, 'haproxy.cfg');
  writeFileSync(conf, `
global
  maxconn 256
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend front
  bind 127.0.0.1:${port}
  http-request deny deny_status 403 if { hdr(upgrade) -i websocket }
  default_backend bridge
backend bridge
  server b1 127.0.0.1:${target}
`);
  const child = new Child('/usr/sbin/haproxy', ['-db', '-f', conf]);
  await waitFor(async () => {
    if (!child.running) throw new Error(`haproxy exited: ${child.output}`);
    return (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.ok;
  }, 'haproxy');
  return { port, stop: () => child.stop(), child };
}

before(async () => {
  dir = tempDir();
  broker = new Broker(dir, await freePort());
  await broker.start();
  backend = await startBackend();
  const port = await freePort();
  bridge = new Bridge(dir, port, `
[fallback]
heartbeat = "2s"
poll_timeout = "3s"
[[listeners]]
address = "127.0.0.1"
port = ${port}
${mqttRouteToml(broker.port)}
[[routes]]
path = "/api"
adapter = "http"
mode = "rpc"
backend = "http://127.0.0.1:${backend.address().port}"
paths = ["/orders"]
`);
  copyWsbridgeLibrary(path.join(dir, 'static'));
  mkdirSync(path.join(dir, 'static', 'diag'));
  copyFileSync(path.join(sourceDir, 'web', 'diag', 'index.html'), path.join(dir, 'static', 'diag', 'index.html'));
  await bridge.start();
  proxies.haproxy = await startHaproxy(await freePort(), port);
  proxies.nginx = await startNginx(await freePort(), port);
  proxies.stall = await new HostileProxy(port).start();
  proxies.stall.upgrades = 'stall';
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  for (const p of Object.values(proxies)) await p.stop();
  await bridge?.stop();
  await broker?.stop();
  backend?.close();
  if (dir) removeDir(dir);
});

// A page from the bridge, through the proxy, with wsbridge.js' connect() on window.
async function pageThrough(port) {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.log('page error:', e.message));
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.addScriptTag({ type: 'module',
    content: "import { connect } from '/wsbridge.js'; window.wsbridgeConnect = connect;" });
  await page.waitForFunction(() => typeof window.wsbridgeConnect === 'function');
  return page;
}

// In the page: an MQTT client and an http client through the proxy; the transports they opened on.
async function connectClients(page, port, options) {
  return within(page.evaluate(async ({ port, options }) => {
    window.received = [];
    window.transports = [];
    const open = (client) => new Promise((resolve, reject) => {
      client.on('open', resolve);
      client.on('error', (e) => reject(new Error(`client error: ${e?.message ?? e}`)));
    });
    window.mqttClient = window.wsbridgeConnect(`ws://127.0.0.1:${port}/mqtt`, options);
    window.mqttClient.on('transport', (e) => window.transports.push(e.transport));
    window.apiClient = window.wsbridgeConnect(`ws://127.0.0.1:${port}/api`, options);
    await Promise.all([open(window.mqttClient), open(window.apiClient)]);
    return { mqtt: window.mqttClient.transport, api: window.apiClient.transport };
  }, { port, options }), 30000, 'the clients to open');
}

// Subscribe, receive from mosquitto_pub, publish to mosquitto_sub, request() through /api.
async function roundTrips(page, name) {
  await within(page.evaluate((filter) => window.mqttClient.subscribe(filter,
    (m) => window.received.push([m.topic, m.payload]), { qos: 1 }), `sensors/${name}/down/#`),
  10000, 'subscribe');
  for (let i = 0; i < 3; ++i) await mosquittoPub(broker, `sensors/${name}/down/${i}`, `{"n":${i}}`, { qos: 1 });
  await page.waitForFunction((n) => window.received.length >= n, 3, { timeout: 15000 });
  assert.deepEqual(await page.evaluate(() => window.received),
    [0, 1, 2].map((i) => [`sensors/${name}/down/${i}`, { n: i }]));
  const sub = await MosquittoSub.start(broker, `sensors/${name}/up`);
  try {
    await within(page.evaluate((topic) => window.mqttClient.publish(topic, { from: 'page' }, { qos: 1 }),
      `sensors/${name}/up`), 10000, 'publish');
    const m = await sub.waitForTopic(`sensors/${name}/up`);
    assert.deepEqual(JSON.parse(m.payload.toString()), { from: 'page' });
  } finally {
    await sub.stop();
  }
  const res = await within(page.evaluate(() => window.apiClient.request('GET', '/orders/7')), 10000,
    'request()');
  assert.equal(res.status, 200);
  assert.deepEqual(typeof res.body === 'string' ? JSON.parse(res.body) : res.body,
    { order: '/orders/7', method: 'GET' });
}

const OPTIONS = { transportTimeout: 3000, fallbackProbeInterval: 0 };

test('haproxy refusing upgrades: SSE carries everything', async () => {
  const page = await pageThrough(proxies.haproxy.port);
  try {
    const opened = await connectClients(page, proxies.haproxy.port, OPTIONS);
    assert.deepEqual(opened, { mqtt: 'sse', api: 'sse' });
    await roundTrips(page, 'haproxy');
  } finally {
    await page.close();
  }
});

// What the page sent just before close() still goes out, the close after it: a body over 64 KiB
// with `keepalive` is refused by the browser at once (the message and the close were lost).
test('haproxy refusing upgrades: a large message sent just before close() still goes out', async () => {
  const page = await pageThrough(proxies.haproxy.port);
  const sub = await MosquittoSub.start(broker, 'sensors/closing/up');
  try {
    assert.deepEqual(await connectClients(page, proxies.haproxy.port, OPTIONS), { mqtt: 'sse', api: 'sse' });
    await page.evaluate(() => {
      window.mqttClient.publish('sensors/closing/up', 'z'.repeat(100000)).catch(() => {});
      window.mqttClient.close();
      window.apiClient.close();
    });
    const m = await sub.waitForTopic('sensors/closing/up');
    assert.equal(m.payload.toString(), 'z'.repeat(100000));
  } finally {
    await sub.stop();
    await page.close();
  }
});

test('nginx holding whole responses and dropping Upgrade: long-polling carries everything', async () => {
  const page = await pageThrough(proxies.nginx.port);
  try {
    const opened = await connectClients(page, proxies.nginx.port, OPTIONS);
    assert.deepEqual(opened, { mqtt: 'polling', api: 'polling' });
    await roundTrips(page, 'nginx');
  } finally {
    await page.close();
  }
});

test('a proxy answering 101 then nothing: SSE, then back to a WebSocket mid-stream, nothing lost or repeated', async () => {
  const page = await pageThrough(proxies.stall.port);
  try {
    const opened = await connectClients(page, proxies.stall.port, { ...OPTIONS, fallbackProbeInterval: 1000 });
    assert.deepEqual(opened, { mqtt: 'sse', api: 'sse' });
    await roundTrips(page, 'stall');
    await page.evaluate(() => { window.received = []; });
    await within(page.evaluate(() => window.mqttClient.subscribe('sensors/stream/#',
      (m) => window.received.push(m.payload.n), { qos: 1 })), 10000, 'subscribe');
    // 80 QoS 1 messages; after the 20th the proxy starts passing upgrades: the probe finds a
    // working WebSocket and the client moves to it while they keep coming.
    for (let i = 0; i < 80; ++i) {
      if (i === 20) proxies.stall.upgrades = 'pass';
      await mosquittoPub(broker, `sensors/stream/${i}`, `{"n":${i}}`, { qos: 1 });
    }
    await page.waitForFunction(() => window.mqttClient.transport === 'websocket', null, { timeout: 15000 });
    await page.waitForFunction(() => window.received.length >= 80, null, { timeout: 15000 });
    await new Promise((r) => setTimeout(r, 500));  // (a duplicate would arrive by now)
    const got = await page.evaluate(() => window.received);
    const dups = got.filter((n, i) => got.indexOf(n) !== i);
    const missing = Array.from({ length: 80 }, (_, i) => i).filter((n) => !got.includes(n));
    assert.deepEqual({ dups, missing, inOrder: got.every((n, i) => i === 0 || n > got[i - 1]) },
      { dups: [], missing: [], inOrder: true }, `received: ${got}`);
    assert.deepEqual(await page.evaluate(() => window.transports.at(-1)), 'websocket');
    await page.evaluate(() => { window.received = []; });
    await roundTrips(page, 'stall-after');
  } finally {
    await page.close();
  }
});

// The /diag page (#16.4) tells each network apart: what works, what is blocked, what buffers.
async function diagnose(port) {
  const page = await browser.newPage();
  try {
    await page.goto(`http://127.0.0.1:${port}/diag/?route=/mqtt&timeout=3000`);
    await page.waitForFunction(() => window.diagResults, null, { timeout: 60000 });
    const shown = await page.textContent('#verdict');
    const r = await page.evaluate(() => window.diagResults);
    return { ...r, shown, ok: Object.fromEntries(Object.entries(r.results).map(([k, v]) => [k, v.ok])) };
  } finally {
    await page.close();
  }
}

test('/diag: a direct path, a proxy refusing upgrades, and one buffering responses, each told plainly', async () => {
  const direct = await diagnose(bridge.port);
  assert.equal(direct.verdict, 'ok');
  assert.deepEqual(direct.ok, { websocket: true, sse: true, polling: true });
  assert.match(direct.shown, /WebSockets work/);
  const refusing = await diagnose(proxies.haproxy.port);
  assert.equal(refusing.verdict, 'warn');
  assert.deepEqual(refusing.ok, { websocket: false, sse: true, polling: true });
  assert.match(refusing.shown, /WebSockets are blocked/);
  const buffering = await diagnose(proxies.nginx.port);
  assert.equal(buffering.verdict, 'warn');
  assert.deepEqual(buffering.ok, { websocket: false, sse: false, polling: true });
  assert.equal(buffering.results.sse.buffered, true, JSON.stringify(buffering.results.sse));
  assert.match(buffering.shown, /held back \(a buffering proxy\)/);
});
