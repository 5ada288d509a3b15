// What the cluster tests (#19; the harness is cluster_support.mjs) connect and read with: a
// JSON-protocol client on Node's `ws`, Chromium pages running web/wsbridge.js through the
// balancer, and a reader of the instances' Prometheus metrics.
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { mosquittoPub, waitFor, within } from './mqtt_passthrough_support.mjs';

// The value of a Prometheus sample in `text` (GET /metrics): the sum over the series of `name`
// whose labels include `labels`; 0 when there is none.
export function metricValue(text, name, labels = {}) {
  let sum = 0;
  for (const m of text.matchAll(/^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/gm)) {
    if (m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)]
      .map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

// A JSON-protocol client of /mqtt (docs/PROTOCOL.md) on Node's `ws`: its messages, its close.
export class JsonClient {
  static async open(url, timeoutMs = 5000) {
    const c = new JsonClient(url);
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no open: ${url}`)), timeoutMs);
      c.ws.once('open', () => { clearTimeout(timer); resolve(); });
      c.ws.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
    return c;
  }

  constructor(url) {
    this.url = url;
    this.frames = [];
    this.closed = null;
    this.nextId = 0;
    this.ws = new WebSocket(url);
    this.ws.on('message', (data) => {
      try { this.frames.push(JSON.parse(data.toString())); } catch { this.frames.push({ raw: data.toString() }); }
    });
    this.ws.on('close', (code, reason) => { this.closed = { code, reason: reason.toString() }; });
    this.ws.on('error', () => {});
  }

  get messages() { return this.frames.filter((f) => f.type === 'message'); }

  // Sends a request with a fresh id and waits for its ack (rejects on an error frame).
  async request(frame, timeoutMs = 5000) {
    const id = `r${++this.nextId}`;
    this.ws.send(JSON.stringify({ ...frame, id }));
    await waitFor(() => this.frames.some((f) => f.id === id) || this.closed,
      `the answer to ${JSON.stringify(frame)} from ${this.url}`, timeoutMs);
    const answer = this.frames.find((f) => f.id === id);
    if (answer?.type !== 'ack') throw new Error(`${JSON.stringify(frame)}: ${JSON.stringify(answer ?? this.closed)}`);
    return answer;
  }

  subscribe(topic, qos = 1) { return this.request({ type: 'subscribe', topic, qos }); }

  close() {
    this.ws.close();
    return waitFor(() => this.closed !== null, 'the close', 3000).catch(() => this.ws.terminate());
  }
}

// One page of Chromium, loaded through `cluster`'s balancer, running web/wsbridge.js from the instances'
// static files, connected through the balancer and subscribed.
export async function openPage(cluster, browser, topic) {
  const page = await browser.newPage();
  await page.goto(cluster.lb.page);
  await page.addScriptTag({ type: 'module',
    content: "import { connect } from '/wsbridge.js'; window.wsbridgeConnect = connect;" });
  await page.waitForFunction(() => typeof window.wsbridgeConnect === 'function');
  await within(page.evaluate(async ({ url, topic }) => {
    window.received = [];
    window.events = [];
    window.client = window.wsbridgeConnect(url, {
      reconnect: { initialDelayMs: 200, maxDelayMs: 2000, factor: 2, jitter: 0.3 },
    });
    for (const name of ['open', 'close', 'reconnecting']) {
      window.client.on(name, (e) => window.events.push({ name, at: Date.now(), ...(e ?? {}) }));
    }
    await new Promise((resolve, reject) => {
      window.client.on('open', resolve);
      setTimeout(() => reject(new Error('no open within 10 s')), 10000);
    });
    await window.client.subscribe(topic, (m) => window.received.push(m.payload), { qos: 1 });
  }, { url: cluster.lb.url('/mqtt'), topic }), 15000, 'a page connecting and subscribing');
  return page;
}

// `n` pages through the balancer, one at a time (the instance whose count grows is the page's),
// with no other client of /mqtt open; the instance with the most pages (at least one) is the
// victim.
export async function openPages(t, cluster, browser, topic, n = 5) {
  const pages = [];
  const on = {}; // node name -> pages
  let before = await cluster.waitForConnections(0);
  for (let i = 0; i < n; i++) {
    const page = await openPage(cluster, browser, topic);
    const now = await cluster.waitForConnections(i + 1);
    const grown = Object.keys(now).filter((name) => now[name] === before[name] + 1);
    assert.equal(grown.length, 1, `page ${i}: ${JSON.stringify(before)} -> ${JSON.stringify(now)}`);
    (on[grown[0]] ??= []).push(page);
    pages.push(page);
    before = now;
  }
  const victim = cluster.node(Object.keys(on).sort((a, b) => on[b].length - on[a].length)[0]);
  t.diagnostic(`pages per instance: ${JSON.stringify(before)}; the victim: ${victim.name}`);
  return { pages, victim, victims: on[victim.name] };
}

// Publishes probes until every page has one (a resubscription's ack may still be on its way),
// then one message on each broker, which every page must get exactly once.
export async function everyPageGetsWhatIsPublished(cluster, pages, prefix) {
  const brokers = [cluster.brokers.A, cluster.brokers.B];
  await waitFor(async () => {
    await mosquittoPub(brokers[0], `${prefix}/probe`, '"probe"', { qos: 1 });
    for (const p of pages) if (!(await pageState(p)).received.includes('probe')) return false;
    return true;
  }, 'a probe at every page', 15000);
  for (const [i, broker] of brokers.entries()) {
    await mosquittoPub(broker, `${prefix}/after-${i}`, `"after-${i}"`, { qos: 1 });
  }
  await waitFor(async () => {
    for (const p of pages) if (!(await pageState(p)).received.includes('after-1')) return false;
    return true;
  }, 'the messages at every page', 10000);
  await new Promise((r) => setTimeout(r, 300));
  for (const p of pages) {
    assert.deepEqual((await pageState(p)).received.filter((x) => x !== 'probe'), ['after-0', 'after-1']);
  }
}

// What a page has seen: its client's events, opens, close codes, transport, state and messages.
export const pageState = (page) => page.evaluate(() => ({
  events: window.events,
  opens: window.events.filter((e) => e.name === 'open').length,
  closes: window.events.filter((e) => e.name === 'close').map((e) => e.code),
  transport: window.client.transport,
  state: window.client.state,
  received: window.received,
}));
