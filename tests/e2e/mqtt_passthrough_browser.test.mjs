// MQTT pass-through (#17) from Debian's headless Chromium (playwright-core, as browser.test.mjs):
// mqtt.js' browser bundle over MQTT 3.1.1 and 5, and Paho JS over 3.1.1 (paho-mqtt 1.1 has no
// MQTT 5), each loaded from node_modules into a blank page served by wsbridge, against a real wsbridge and a real
// mosquitto: connect, subscribe, receive a mosquitto_pub message, publish to mosquitto_sub.
// Run by CTest (mqtt_passthrough.browser, labels mqtt-passthrough and e2e).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  startServers, stopServers, mosquittoPub, MosquittoSub, nodeModules, within,
} from './mqtt_passthrough_support.mjs';

let servers;
let browser;
before(async () => {
  servers = await startServers();
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
after(async () => {
  await browser?.close();
  await stopServers(servers, 'mqtt_passthrough_browser');
});

// wsbridge's blank page with one client library loaded; its console errors are printed.
async function pageWith(script) {
  const page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.log('page:', m.text()); });
  page.on('pageerror', (e) => console.log('page error:', e.message));
  await page.goto(servers.bridge.page);
  await page.addScriptTag({ path: path.join(nodeModules, script) });
  return page;
}

// The round trip every client makes: `connectAndSubscribe` ran in the page (window.received
// collects [topic, payload]), then a mosquitto_pub message must show there and `publish` (run in
// the page) must reach mosquitto_sub.
async function roundTrip(page, prefix, publish) {
  await mosquittoPub(servers.broker, `${prefix}/down`, `to ${prefix}`, { qos: 1 });
  await page.waitForFunction((topic) => window.received.some(([t]) => t === topic), `${prefix}/down`,
    { timeout: 8000 });
  const got = await page.evaluate((topic) => window.received.find(([t]) => t === topic), `${prefix}/down`);
  assert.deepEqual(got, [`${prefix}/down`, `to ${prefix}`]);
  const sub = await MosquittoSub.start(servers.broker, `${prefix}/up`);
  try {
    await within(page.evaluate(publish, `${prefix}/up`), 8000, 'the publish in the page');
    const m = await sub.waitForTopic(`${prefix}/up`);
    assert.equal(m.payload.toString(), `from ${prefix}`);
  } finally {
    await sub.stop();
  }
}

for (const v of [4, 5]) {
  test(`mqtt.js browser bundle, protocol version ${v}`, async () => {
    const page = await pageWith('mqtt/dist/mqtt.min.js');
    const prefix = `sensors/browser${v}`;
    try {
      await within(page.evaluate(async ({ url, v, prefix }) => {
        window.received = [];
        const c = window.mqtt.connect(url, { protocolVersion: v, clientId: `page${v}`, reconnectPeriod: 0 });
        window.client = c;
        c.on('message', (t, p) => window.received.push([t, new TextDecoder().decode(p)]));
        await new Promise((resolve, reject) => {
          c.once('connect', resolve);
          c.once('error', (e) => reject(new Error(`mqtt.js error: ${e.message}`)));
          c.once('close', () => reject(new Error('closed before CONNACK')));
        });
        await c.subscribeAsync(`${prefix}/#`, { qos: 1 });
      }, { url: servers.bridge.url('/mqtt'), v, prefix }), 10000, 'mqtt.js to connect and subscribe');
      // QoS 1 from the page: resolved by the PUBACK.
      await roundTrip(page, prefix, (topic) => window.client.publishAsync(topic, `from ${topic.slice(0, -3)}`, { qos: 1 }));
    } finally {
      await page.evaluate(() => window.client?.end(true)).catch(() => {});
      await page.close();
    }
  });
}

test('Paho JS, MQTT 3.1.1: round trip, and a denied filter fails its subscribe', async () => {
  const page = await pageWith('paho-mqtt/paho-mqtt.js');
  const prefix = 'sensors/paho';
  try {
    await within(page.evaluate(async ({ url, prefix }) => {
      window.received = [];
      const c = new window.Paho.Client(url, 'paho1');
      window.paho = c;
      c.onMessageArrived = (m) => window.received.push([m.destinationName, m.payloadString]);
      await new Promise((resolve, reject) => c.connect({
        mqttVersion: 4, timeout: 5, onSuccess: resolve,
        onFailure: (e) => reject(new Error(`Paho connect: ${e.errorCode} ${e.errorMessage}`)),
      }));
      await new Promise((resolve, reject) => c.subscribe(`${prefix}/#`, {
        qos: 1, onSuccess: resolve, onFailure: (e) => reject(new Error(`Paho subscribe: ${JSON.stringify(e)}`)),
      }));
    }, { url: servers.bridge.url('/mqtt'), prefix }), 10000, 'Paho to connect and subscribe');
    await roundTrip(page, prefix, (topic) => {
      const m = new window.Paho.Message(`from ${topic.slice(0, -3)}`);
      m.destinationName = topic;
      m.qos = 1;
      return new Promise((resolve) => {
        window.paho.onMessageDelivered = resolve;  // after the PUBACK
        window.paho.send(m);
      });
    });
    // Paho reports a SUBACK failure code (0x80) through onFailure.
    const denied = await within(page.evaluate(() => new Promise((resolve) => window.paho.subscribe('secret/#', {
      // (errorCode is the SUBACK's return codes, a Uint8Array.)
      qos: 1, onSuccess: () => resolve('granted'), onFailure: (e) => resolve(Array.from(e.errorCode)),
    }))), 8000, 'the SUBACK of secret/#');
    assert.deepEqual(denied, [0x80]);
  } finally {
    await page.evaluate(() => window.paho?.isConnected() && window.paho.disconnect()).catch(() => {});
    await page.close();
  }
});
