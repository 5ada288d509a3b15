// Bodies stream through the reverse proxy, never held whole (#18, docs/PROXY.md "What is
// relayed"): 100 MiB downloads (nginx's static file with its Content-Length, and a chunked stream
// from proxy_backends/http_backend.py) and 100 MiB uploads (Content-Length and chunked, hashed by
// the backend), each checked byte for byte (SHA-256 of blocks.py's stream) and with framing kept,
// while wsbridge's resident memory (/proc/<pid>/status, peak reset before each transfer) stays
// within RSS_GROWTH_LIMIT of where it was. Then a slow reader at each end: a client that stops
// reading for seconds in the middle of a 100 MiB download, and a backend that stops reading in
// the middle of a 100 MiB upload; wsbridge must stop reading the other side instead of buffering.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import http from 'node:http';
import {
  MiB, Nginx, ProxyBridge, RssProbe, assertBoundedGrowth, freePort, mib, sleep, startHttpBackend,
  stopAll, streamBlocks, streamHash, tempDir, within,
} from './proxy_support.mjs';

const SIZE = 100 * MiB;
let dir;
let nginx;
let backend;
let bridge;
let expected;

before(async () => {
  dir = tempDir();
  expected = streamHash(SIZE);
  nginx = await new Nginx(dir, { bigFileBytes: SIZE }).start();
  backend = await startHttpBackend();
  const port = await freePort();
  bridge = await new ProxyBridge(dir, port, `
[[listeners]]
address = "127.0.0.1"
port = ${port}
[[proxy]]
path = "/files"
backend = "${nginx.url}"
strip_prefix = true
[[proxy]]
path = "/gen"
backend = "http://127.0.0.1:${backend.port}"
[[proxy]]
path = "/up"
backend = "http://127.0.0.1:${backend.port}"
max_body_bytes = "200MiB"
`).start();
  // Warm up: the first requests allocate what every later one reuses.
  await download('/files/index.html');
  await download('/gen/stream?bytes=1048576');
});

after(async () => {
  await stopAll('proxy_streaming', dir, { bridges: [bridge], backends: [nginx, backend] });
});

// GETs `target` through wsbridge, hashing the body as it comes. `pauseAfter`: once that many
// bytes arrived, the client stops reading and awaits `whilePaused()` before reading on. The
// request says "Connection: keep-alive" as a browser's does, or with `close` "Connection: close".
function download(target, { pauseAfter, whilePaused, close = false } = {}) {
  return new Promise((resolve, reject) => {
    const headers = { Connection: close ? 'close' : 'keep-alive' };
    const req = http.get({ host: '127.0.0.1', port: bridge.port, path: target, headers, agent: false }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let paused = false;
      res.on('data', (chunk) => {
        hash.update(chunk);
        bytes += chunk.length;
        if (pauseAfter !== undefined && !paused && bytes >= pauseAfter) {
          paused = true;
          res.pause();
          whilePaused().then(() => res.resume(), (e) => { req.destroy(); reject(e); });
        }
      });
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode, headers: res.headers, bytes, sha256: hash.digest('hex') });
      });
      res.on('error', reject);
      res.on('aborted', () => reject(new Error(`${target}: the response was cut after ${bytes} bytes`)));
    });
    req.on('error', reject);
  });
}

// POSTs `total` bytes of the stream to `target` (chunked, or with a Content-Length), writing only
// as fast as the connection takes them; resolves with the backend's JSON answer.
function upload(target, total, { chunked }) {
  return new Promise((resolve, reject) => {
    const headers = chunked ? { 'Transfer-Encoding': 'chunked' } : { 'Content-Length': String(total) };
    headers.Connection = 'keep-alive';
    const req = http.request({ host: '127.0.0.1', port: bridge.port, method: 'POST', path: target,
      headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        req.destroy();
        const body = Buffer.concat(chunks).toString();
        if (res.statusCode !== 200) reject(new Error(`${target}: ${res.statusCode} ${body}`));
        else resolve(JSON.parse(body));
      });
    });
    req.on('error', reject);
    (async () => {
      for (const b of streamBlocks(total)) {
        if (!req.write(b)) await once(req, 'drain');
      }
      req.end();
    })().catch(reject);
  });
}

async function measured(what, transfer) {
  const probe = new RssProbe(bridge.pid).start();
  let memory;
  try {
    const result = await within(transfer(probe), 90000, what);
    memory = probe.stop();
    console.log(`${what}: wsbridge RSS ${mib(memory.baseline)} -> peak ${mib(memory.peak)} (+${mib(memory.growth)})`);
    return { result, memory };
  } finally {
    if (!memory) probe.stop();
  }
}

test('100 MiB download with a Content-Length (nginx static file): intact, memory bounded', { timeout: 120000 }, async () => {
  const { result, memory } = await measured('download (Content-Length)', () => download('/files/big.bin'));
  assert.equal(result.status, 200);
  assert.equal(result.headers['content-length'], String(SIZE), 'the Content-Length is kept');
  assert.equal(result.headers['transfer-encoding'], undefined);
  assert.equal(result.bytes, SIZE);
  assert.equal(result.sha256, expected, 'the body arrived altered');
  assertBoundedGrowth(assert, memory, 'a 100 MiB download');
});

test('100 MiB chunked download (a streaming backend): stays chunked, intact, memory bounded', { timeout: 120000 }, async () => {
  const { result, memory } = await measured('download (chunked)', () => download(`/gen/stream?bytes=${SIZE}`));
  assert.equal(result.status, 200);
  assert.equal(result.headers['transfer-encoding'], 'chunked', 'a chunked body stays chunked');
  assert.equal(result.headers['content-length'], undefined);
  assert.equal(result.bytes, SIZE);
  assert.equal(result.sha256, expected, 'the body arrived altered');
  assertBoundedGrowth(assert, memory, 'a 100 MiB chunked download');
});

test('100 MiB download by a client that sent Connection: close: all of it, then the close', { timeout: 120000 }, async () => {
  const { result, memory } = await measured('download (Connection: close)', () => download('/files/big.bin', { close: true }));
  assert.equal(result.status, 200);
  assert.equal(result.bytes, SIZE, 'the end of the body was lost');
  assert.equal(result.sha256, expected, 'the body arrived altered');
  assertBoundedGrowth(assert, memory, 'a 100 MiB download');
});

test('100 MiB upload with a Content-Length: the backend gets it whole, memory bounded', { timeout: 120000 }, async () => {
  const { result, memory } = await measured('upload (Content-Length)', () => upload('/up/echo', SIZE, { chunked: false }));
  assert.equal(result.framing, 'length', 'a Content-Length body keeps its length');
  const cl = result.headers.filter(([n]) => n.toLowerCase() === 'content-length').map(([, v]) => v);
  assert.deepEqual(cl, [String(SIZE)]);
  assert.equal(result.body_bytes, SIZE);
  assert.equal(result.body_sha256, expected, 'the upload arrived altered');
  assertBoundedGrowth(assert, memory, 'a 100 MiB upload');
});

test('100 MiB chunked upload: stays chunked, the backend gets it whole, memory bounded', { timeout: 120000 }, async () => {
  const { result, memory } = await measured('upload (chunked)', () => upload('/up/echo', SIZE, { chunked: true }));
  assert.equal(result.framing, 'chunked', 'a chunked body stays chunked');
  assert.equal(result.body_bytes, SIZE);
  assert.equal(result.body_sha256, expected, 'the upload arrived altered');
  assertBoundedGrowth(assert, memory, 'a 100 MiB chunked upload');
});

test('a client that stops reading a 100 MiB download for 4 s: wsbridge stops reading nginx', { timeout: 120000 }, async () => {
  let duringPause;
  const { result, memory } = await measured('slow client download', (probe) => download('/files/big.bin', {
    pauseAfter: MiB,
    whilePaused: async () => {
      await sleep(4000);
      duringPause = probe.growth;
    },
  }));
  console.log(`  growth while the client read nothing: ${mib(duringPause)}`);
  assert.equal(result.status, 200);
  assert.equal(result.bytes, SIZE);
  assert.equal(result.sha256, expected, 'the body arrived altered');
  assertBoundedGrowth(assert, { ...memory, growth: duringPause }, 'while the client read nothing');
  assertBoundedGrowth(assert, memory, 'a slowly read download');
});

test('a backend that stops reading a 100 MiB upload for 4 s: wsbridge stops reading the client', { timeout: 120000 }, async () => {
  const { result, memory } = await measured('slow backend upload',
    () => upload(`/up/echo?pause_after=${MiB}&pause_ms=4000`, SIZE, { chunked: false }));
  assert.equal(result.body_bytes, SIZE);
  assert.equal(result.body_sha256, expected, 'the upload arrived altered');
  assertBoundedGrowth(assert, memory, 'an upload to a slow backend');
});
