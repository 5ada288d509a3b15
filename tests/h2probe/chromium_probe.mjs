// Does Chromium carry WebSockets over HTTP/2 (RFC 8441) to tests/h2probe/h2probe.c (lws 4.1.6),
// and do they work? Research only (docs/TLS.md "HTTP/2"), not part of the suite. Each phase uses
// its own URL path, so h2probe's log (ws-established h2=0|1 path=...) tells which went over h2.
// Usage: node tests/h2probe/chromium_probe.mjs PORT SPKI_SHA256   (after npm ci in tests/e2e, or
// with E2E_DIR naming another checkout's tests/e2e)
import { createRequire } from 'node:module';

const require = createRequire(`${process.env.E2E_DIR || new URL('../e2e', import.meta.url).pathname}/`);
const { chromium } = require('playwright-core');
const [port, spki] = process.argv.slice(2);
const origin = `https://localhost:${port}`;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    `--ignore-certificate-errors-spki-list=${spki}`],
});

// One WebSocket: open, echo a text, a 300 KB binary (answered with its length), close 1000.
const exchange = async (page, path) => page.evaluate(async (url) => {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const next = () => new Promise((resolve, reject) => {
    ws.onmessage = (e) => resolve(typeof e.data === 'string' ? e.data : `${e.data.byteLength} B`);
    ws.onerror = () => reject(new Error('error'));
    ws.onclose = (e) => reject(new Error(`closed ${e.code}`));
  });
  try {
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('open failed')); });
    const out = { extensions: ws.extensions, protocol: ws.protocol };
    ws.send('hello'); out.echo = await next();
    ws.send(new Uint8Array(300 * 1024)); out.big = await next();
    out.close = await new Promise((resolve) => { ws.onclose = (e) => resolve(`${e.code} clean=${e.wasClean}`); ws.close(1000, 'bye'); });
    return out;
  } catch (e) { return { failed: e.message }; }
}, `wss://localhost:${port}${path}`);

// Phase 1: a fresh browser, no connection to the server yet.
let page = await browser.newPage();
console.log('1 fresh (no h2 session yet):', JSON.stringify(await exchange(page, '/fresh')));

// Phase 2: the page is loaded over https first (an HTTP/2 session exists), then the WebSocket.
const context = await browser.newContext();
page = await context.newPage();
const response = await page.goto(`${origin}/`);
console.log('2 page protocol:', await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol), response.status());
console.log('2 after the page:', JSON.stringify(await exchange(page, '/after-page')));

// Phase 3: 30 WebSockets at once from that page (the server allows 24 streams per connection).
const many = await page.evaluate(async (base) => {
  const results = await Promise.all([...Array(30).keys()].map((i) => new Promise((resolve) => {
    const ws = new WebSocket(`${base}/many-${i}`);
    const t = setTimeout(() => resolve('timeout'), 5000);
    ws.onopen = () => { ws.send(`m${i}`); };
    ws.onmessage = (e) => { clearTimeout(t); resolve(e.data === `m${i}` ? 'ok' : `bad ${e.data}`); };
    ws.onclose = (e) => { clearTimeout(t); resolve(`closed ${e.code}`); };
  })));
  const count = {};
  for (const r of results) count[r] = (count[r] || 0) + 1;
  return count;
}, `wss://localhost:${port}`);
console.log('3 thirty at once:', JSON.stringify(many));
await browser.close();
