// permessage-deflate between Debian's headless Chromium (driven by playwright-core, as
// browser.test.mjs does) and a running wsbridge, through compression_sniffer.mjs so the frames'
// RSV1 bits are checked on the wire. Run by tests/integration/compression_foreign_test.cpp:
//   node compression_browser.mjs --port P
// (wsbridge serves web/ as static_dir: the page is loaded from it, the WebSocket goes through the
// sniffer). Exit status 0 when every check holds; failures are printed.
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { check, failures, startSniffer, extensionsHeader, parseExtension, checkContractResponse } from './compression_sniffer.mjs';


const { values } = parseArgs({ options: { port: { type: 'string' } } });
const port = Number(values.port);
const KIB = 1024;
const SIZES = [1, 100, 200, 4 * KIB, 64 * KIB, 256 * KIB, 1023 * KIB];  // up to 1 MiB - 1 KiB

let browser;
const sniffer = await startSniffer(port);
const timer = setTimeout(() => { check(false, 'timed out after 50 s'); finish(); }, 50000);
async function finish() {
  clearTimeout(timer);
  await browser?.close().catch(() => {});
  await sniffer.close();
  console.log(`browser: ${failures.length ? `${failures.length} failure(s)` : 'OK'}`);
  process.exit(failures.length ? 1 : 0);
}

try {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/wsbridge.js`);
  // In the page: open, echo each size as text and as binary (deterministic content, compressible
  // and not), compare byte for byte; return what the page saw.
  const result = await page.evaluate(async ({ url, sizes }) => {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    const queue = [];
    let waiter = null;
    ws.onmessage = (e) => { if (waiter) { waiter(e.data); waiter = null; } else queue.push(e.data); };
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('error')); });
    const next = () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => { waiter = r; }));
    const words = ['temperature', 'humidity', 'sensor', 'kitchen', '21.5', '40%', 'ok', 'status'];
    const errors = [];
    let seed = 12345;
    const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed >>> 16; };
    for (const size of sizes) {
      let text = size >= 4 ? 'ž✓ ' : '';  // some multi-byte UTF-8 too
      while (text.length < size) text += `${words[rand() % words.length]} `;
      text = text.slice(0, size);
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i++) bytes[i] = i % 3 === 0 ? rand() & 0xff : (i >> 4) & 0xff;
      ws.send(text);
      const t = await next();
      if (t !== text) errors.push(`text ${size}: echo differs (${typeof t} of ${t.length ?? t.byteLength})`);
      ws.send(bytes);
      const b = await next();
      const same = b instanceof ArrayBuffer && b.byteLength === size &&
        new Uint8Array(b).every((v, i) => v === bytes[i]);
      if (!same) errors.push(`binary ${size}: echo differs`);
    }
    const extensions = ws.extensions;
    ws.close();
    return { extensions, errors };
  }, { url: `ws://127.0.0.1:${sniffer.port}/echo`, sizes: SIZES });

  for (const e of result.errors) check(false, e);
  const { name, params } = parseExtension(result.extensions);
  check(name === 'permessage-deflate' && params.has('server_no_context_takeover'),
    `ws.extensions is "${result.extensions}"`);
  try {
    checkContractResponse(result.extensions);  // and exactly the contract's parameters
  } catch (e) {
    check(false, e.message);
  }
  const record = sniffer.connections[0];
  check(record && extensionsHeader(record.response) === result.extensions,
    `the page's ws.extensions "${result.extensions}" is not the response's`);
  // Chromium compresses what it sends; the server compressed its echoes of the larger messages.
  const fromServer = record.toClient.filter((f) => f.first);
  const fromPage = record.toServer.filter((f) => f.first);
  check(fromPage.some((f) => f.rsv1), 'Chromium sent no compressed frame');
  check(fromServer.length === 2 * SIZES.length, `${fromServer.length} messages from the server`);
  for (const [i, size] of SIZES.entries()) {
    // Text: compressible from 200 B on, below the 128 B threshold not at all.
    if (size < 128) check(fromServer[2 * i]?.rsv1 === false, `text ${size}: server compressed it`);
    if (size >= 200) check(fromServer[2 * i]?.rsv1 === true, `text ${size}: server did not compress it`);
  }
} catch (e) {
  check(false, e.stack ?? String(e));
}
await finish();
