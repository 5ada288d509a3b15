// End-to-end tests in Debian's headless Chromium: the demo page and the seed's plain WebSocket
// code against a real wsbridge and a real mosquitto, each started here on free loopback ports.
// Run by CTest (label e2e) with WSBRIDGE_BINARY pointing at the wsbridge under test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freePort } from './mqtt_passthrough_support.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const sourceDir = path.resolve(here, '..', '..');
const binary = process.env.WSBRIDGE_BINARY ?? path.join(sourceDir, 'build', 'wsbridge');
const artifacts = process.env.E2E_ARTIFACTS ?? path.join(sourceDir, 'build', 'e2e-artifacts');
const work = mkdtempSync(path.join(tmpdir(), 'wsbridge-e2e-'));

function portOpen(port) {
  return new Promise((resolve) => {
    const s = tcpConnect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function waitFor(check, what, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

// A child process whose output is kept for failure messages; killed when the tests end.
class Child {
  constructor(cmd, args) {
    this.output = '';
    this.proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout.on('data', (d) => { this.output += d; });
    this.proc.stderr.on('data', (d) => { this.output += d; });
    this.exited = new Promise((resolve) => this.proc.once('exit', resolve));
  }
  async stop(signal = 'SIGTERM') {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill(signal);
    await this.exited;
  }
}

let brokerPort, bridgePort, backendPort, broker, bridge, backend, browser, page;
const brokerConfig = path.join(work, 'mosquitto.conf');
const bridgeConfig = path.join(work, 'wsbridge.toml');

async function startBroker() {
  broker = new Child('/usr/sbin/mosquitto', ['-c', brokerConfig]);
  await waitFor(() => portOpen(brokerPort), 'mosquitto');
}

async function startBridge() {
  bridge = new Child(binary, ['--config', bridgeConfig]);
  await waitFor(() => portOpen(bridgePort), 'wsbridge');
}

function mosquittoPub(topic, message) {
  return new Promise((resolve, reject) => {
    execFile('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(brokerPort), '-t', topic, '-m', message],
      (err) => (err ? reject(err) : resolve()));
  });
}

before(async () => {
  brokerPort = await freePort();
  bridgePort = await freePort();
  backendPort = await freePort();
  // The tests' own HTTP backend (Python standard library), for the rpc route.
  backend = new Child('/usr/bin/python3',
    [path.join(sourceDir, 'tests', 'support', 'http_backend.py'), '--port', String(backendPort)]);
  await waitFor(() => portOpen(backendPort), 'the HTTP backend');
  writeFileSync(brokerConfig,
    `listener ${brokerPort} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  writeFileSync(bridgeConfig, `
[server]
static_dir = "${path.join(sourceDir, 'web')}"
shutdown_timeout = "1s"
[[listeners]]
address = "127.0.0.1"
port = ${bridgePort}
[upstreams.local]
uri = "tcp://127.0.0.1:${brokerPort}"
reconnect_min = "200ms"
reconnect_max = "1s"
[[routes]]
path = "/echo"
adapter = "echo"
prefix = "Echo: "
[[routes]]
path = "/mqtt"
adapter = "mqtt"
upstream = "local"
allow_subscribe = ["sensors/#", "cmd/#", "demo/#"]
allow_publish = ["sensors/#", "cmd/#", "demo/#"]
[[routes]]
path = "/api"
adapter = "http"
mode = "rpc"
backend = "http://127.0.0.1:${backendPort}"
paths = ["/json/", "/echo", "/status/"]
`);
  await startBroker();
  await startBridge();
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.log('page:', m.text()); });
  await page.goto(`http://127.0.0.1:${bridgePort}/`);
});

after(async () => {
  await browser?.close();
  await bridge?.stop();
  await broker?.stop();
  await backend?.stop();
  rmSync(work, { recursive: true, force: true });
});

const text = (selector) => page.locator(selector).innerText();

test('the demo page connects and shows the upstream up', async () => {
  await page.waitForFunction(() => document.querySelector('#conn-state')?.textContent.includes('open'));
  await page.waitForFunction(() => document.querySelector('#upstream-state')?.textContent.includes('up'));
});

test('a message published with mosquitto_pub appears in the page', async () => {
  await page.fill('#filter', 'sensors/#');
  await page.click('#subscribe');
  // Subscribed when the bridge answered; then publish until the message shows (the first one
  // could race the SUBACK).
  await waitFor(async () => {
    await mosquittoPub('sensors/k1/temp', '21.5');
    return (await page.locator('#messages [data-topic="sensors/k1/temp"]').count()) > 0;
  }, 'the message in the page');
  assert.match(await text('#messages'), /21\.5/);
});

test('a publish from the page reaches mosquitto_sub', async () => {
  const sub = new Child('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(brokerPort), '-t', 'cmd/lamp', '-C', '1']);
  await new Promise((r) => setTimeout(r, 300));  // let it subscribe
  await page.fill('#pub-topic', 'cmd/lamp');
  await page.fill('#pub-payload', '{"on":true}');
  await page.click('#publish');
  await Promise.race([sub.exited, new Promise((r) => setTimeout(r, 10000))]);
  await sub.stop();
  assert.match(sub.output, /"on":\s*true/);
});

test('a denied topic shows its error', async () => {
  await page.fill('#filter', 'secret/#');
  await page.click('#subscribe');
  await page.waitForFunction(() => /forbidden/.test(document.querySelector('#errors')?.textContent ?? ''));
});

test('the broker stopped and restarted: the page shows the outage, then receives again', async () => {
  await broker.stop('SIGKILL');
  await page.waitForFunction(() => document.querySelector('#upstream-state')?.textContent.includes('down'));
  await startBroker();
  await page.waitForFunction(() => document.querySelector('#upstream-state')?.textContent.includes('up'),
    null, { timeout: 15000 });
  await waitFor(async () => {
    await mosquittoPub('sensors/after-broker/temp', '7');
    return (await page.locator('#messages [data-topic="sensors/after-broker/temp"]').count()) > 0;
  }, 'a message after the broker restart');
});

test('wsbridge restarted: the page reconnects and resubscribes by itself', async () => {
  await bridge.stop();
  await page.waitForFunction(() => !document.querySelector('#conn-state')?.textContent.includes('open'));
  await startBridge();
  await page.waitForFunction(() => document.querySelector('#conn-state')?.textContent.includes('open'),
    null, { timeout: 20000 });
  await waitFor(async () => {
    await mosquittoPub('sensors/after-bridge/temp', '8');
    return (await page.locator('#messages [data-topic="sensors/after-bridge/temp"]').count()) > 0;
  }, 'a message after the wsbridge restart', 20000);
});

test('a screenshot of the page is saved as a test artifact', async () => {
  mkdirSync(artifacts, { recursive: true });
  const file = path.join(artifacts, 'demo-page.png');
  await page.screenshot({ path: file, fullPage: true });
  assert.ok((await import('node:fs')).statSync(file).size > 1000);
});

test('on load the page subscribes to sensors/# by itself, and charts sensors/+/temp over time', async () => {
  const fresh = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  try {
    await fresh.goto(`http://127.0.0.1:${bridgePort}/`);
    // Subscribed once the bridge acknowledged (the chip is no longer pending): one publish after
    // that must show, with no retry.
    await fresh.waitForSelector('#subscriptions li[data-filter="sensors/#"]:not(.pending)');
    await mosquittoPub('sensors/x', 'published after load');
    await fresh.waitForSelector('#messages [data-topic="sensors/x"]', { timeout: 5000 });
    assert.match(await fresh.locator('#messages').innerText(), /published after load/);

    // Values a second apart: the time axis starts at the oldest, so they span the plot's width,
    // and it is labelled with times of day.
    for (const value of ['20.5', '23', '21.25', '22']) {
      await mosquittoPub('sensors/x/temp', value);
      await new Promise((r) => setTimeout(r, 700));
    }
    await fresh.waitForFunction(() => window.wsbridgeDemo.chart?.points.length >= 4);
    const chart = await fresh.evaluate(() => window.wsbridgeDemo.chart);
    const width = chart.plotRight - chart.plotLeft;
    assert.ok(width > 500, `plot width ${width}`);
    const xs = chart.points.map((p) => p.x);
    assert.ok(xs[0] - chart.plotLeft < 0.05 * width, `first point at ${xs[0]} of ${JSON.stringify(chart)}`);
    assert.ok(xs.at(-1) > chart.plotLeft + 0.5 * width, `last point at ${xs.at(-1)}`);
    assert.ok(chart.ticks.length >= 2, `ticks ${chart.ticks}`);
    for (const tick of chart.ticks) assert.match(tick, /^\d{1,2}:\d{2}:\d{2}$/);
    mkdirSync(artifacts, { recursive: true });
    await fresh.locator('#chart-panel').screenshot({ path: path.join(artifacts, 'demo-chart.png') });
  } finally {
    await fresh.close();
  }
});

test("the seed's plain browser code works unchanged", async () => {
  const seed = await browser.newPage();
  await seed.goto(`http://127.0.0.1:${bridgePort}/seed-client.html`);
  await seed.waitForFunction(() => /Message from server: Echo: Hello Server!/.test(document.querySelector('#log')?.textContent ?? ''));
  assert.match(await seed.locator('#log').innerText(), /WebSocket Connected/);
  await seed.close();
});

test('request() in the page reaches a real HTTP backend through an rpc route', async () => {
  const results = await page.evaluate(async (port) => {
    const { WsbridgeClient } = await import('/wsbridge.js');
    const client = new WsbridgeClient(`ws://127.0.0.1:${port}/api`);
    await new Promise((resolve) => client.on('open', resolve));
    const get = await client.request('GET', '/json/orders/42');
    const post = await client.request('POST', '/echo', { sku: 'A-1' }, { headers: { 'X-Test': 'e2e' } });
    const missing = await client.request('GET', '/status/404');
    let refused = null;
    try {
      await client.request('GET', '/admin');
    } catch (err) {
      refused = err.code;
    }
    client.close();
    return { get, post, missing, refused };
  }, bridgePort);
  assert.equal(results.get.status, 200);
  assert.equal(results.get.body.path, '/json/orders/42');
  assert.deepEqual(results.post.body, { sku: 'A-1' });
  assert.equal(results.post.headers['x-test-echo'], 'e2e');
  assert.equal(results.missing.status, 404);
  assert.equal(results.refused, 'forbidden');
});
