// wss:// and https:// in Debian's headless Chromium (driven by playwright-core, as
// browser.test.mjs does) against a running wsbridge with a certificate from a test CA generated
// at test time. Chromium trusts it through --ignore-certificate-errors-spki-list (the server
// key's SPKI hash) and nothing else. Run by tests/integration/tls_foreign_test.cpp:
//   node tls_browser.mjs --port P --spki BASE64
// (wsbridge serves web/ as static_dir over https). Exit status 0 when every check holds.
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values } = parseArgs({ options: { port: { type: 'string' }, spki: { type: 'string' } } });
const port = Number(values.port);
const failures = [];
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'}  ${what}`);
  if (!ok) failures.push(what);
}

let browser;
const timer = setTimeout(() => { check(false, 'timed out after 50 s'); finish(); }, 50000);
async function finish() {
  clearTimeout(timer);
  await browser?.close().catch(() => {});
  console.log(`tls browser: ${failures.length ? `${failures.length} failure(s)` : 'OK'}`);
  process.exit(failures.length ? 1 : 0);
}

try {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--ignore-certificate-errors-spki-list=${values.spki}`],
  });
  const page = await browser.newPage();
  // The page over https from the same port as the WebSocket.
  const response = await page.goto(`https://127.0.0.1:${port}/index.html`);
  check(response?.status() === 200, `GET https://127.0.0.1:${port}/index.html: ${response?.status()}`);
  const security = await response?.securityDetails();
  check(security?.subjectName === 'localhost', `certificate subject ${security?.subjectName}`);
  check(security?.issuer === 'wsbridge test CA', `certificate issuer ${security?.issuer}`);
  check(/^TLS 1\.[23]$/.test(security?.protocol ?? ''), `protocol ${security?.protocol}`);
  check(page.url().startsWith('https://'), `the page is a secure origin: ${page.url()}`);
  const result = await page.evaluate(async (url) => {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    const messages = [];
    let waiter = null;
    ws.onmessage = (e) => { if (waiter) { waiter(e.data); waiter = null; } else messages.push(e.data); };
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error(`WebSocket error on ${url}`));
    });
    const next = () => (messages.length ? Promise.resolve(messages.shift()) : new Promise((r) => { waiter = r; }));
    const text = 'hello over wss ✓ '.repeat(500);
    ws.send(text);
    const echoed = await next();
    const bytes = new Uint8Array(70000).map((_, i) => (i * 7) & 0xff);
    ws.send(bytes);
    const back = new Uint8Array(await next());
    const closed = new Promise((r) => { ws.onclose = (e) => r(e.code); });
    ws.close(1000);
    return {
      textOk: echoed === text,
      binaryOk: back.length === bytes.length && back.every((b, i) => b === bytes[i]),
      extensions: ws.extensions,
      closeCode: await closed,
      secure: window.isSecureContext,
    };
  }, `wss://127.0.0.1:${port}/echo`);
  check(result.textOk, 'text echo over wss://');
  check(result.binaryOk, '70000 B binary echo over wss://');
  check(result.extensions.startsWith('permessage-deflate'), `extensions: ${result.extensions}`);
  check(result.closeCode === 1000, `close code ${result.closeCode}`);
  check(result.secure, 'window.isSecureContext');
  // The HTTP fallback transports over https (HTTP/2 where Chromium and lws agree on it).
  for (const transport of ['sse', 'polling']) {
    const fallback = await page.evaluate(async ({ url, transport }) => {
      const { WsbridgeSocket } = await import('/wsbridge-socket.js');
      const socket = new WsbridgeSocket(url, { forceTransport: transport });
      const echoes = [];
      await new Promise((resolve, reject) => {
        socket.onopen = resolve;
        socket.onerror = () => reject(new Error(`${transport} failed on ${url}`));
        setTimeout(() => reject(new Error(`${transport} did not open`)), 10000);
      });
      const sent = Array.from({ length: 50 }, (_, i) => `${transport} ${i} ${'✓'.repeat(i * 40)}`);
      const all = new Promise((resolve) => {
        socket.onmessage = (e) => { echoes.push(e.data); if (echoes.length === sent.length) resolve(); };
      });
      for (const text of sent) socket.send(text);
      await Promise.race([all, new Promise((r) => setTimeout(r, 10000))]);
      socket.close(1000);
      const protocols = [...new Set(performance.getEntriesByType('resource')
        .filter((e) => e.name.includes('/_wsbridge/')).map((e) => e.nextHopProtocol))];
      return { transport: socket.transport, inOrder: echoes.join('\n') === sent.join('\n'),
        count: echoes.length, protocols };
    }, { url: `wss://127.0.0.1:${port}/echo`, transport });
    check(fallback.transport === transport, `the fallback session is on ${transport}: ${fallback.transport}`);
    check(fallback.inOrder, `50 echoes over ${transport} on https, in order (${fallback.count} came; ` +
      `HTTP versions ${fallback.protocols.join(', ')})`);
  }
} catch (e) {
  check(false, `${e.name}: ${e.message}`);
}
await finish();
