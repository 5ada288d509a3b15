// What the reverse proxy and WebSocket pass-through tests (#18, label proxy, docs/PROXY.md)
// share: real backends started here on free loopback ports (Debian's nginx with a generated
// config, the raw-socket HTTP backend and the python3-websockets server of proxy_backends/), a
// real wsbridge with [[proxy]] tables, a raw HTTP/1.1 connection that shows responses exactly as
// they arrive (keep-alive, pipelining, framing), wsbridge's memory as /proc reports it, and the
// deterministic bulk data of proxy_backends/blocks.py.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import http from 'node:http';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import {
  AUTH_TABLES, Child, JWT_SECRET, freePort, removeDir, sleep, token, waitFor, within,
} from './mqtt_passthrough_support.mjs';

export { AUTH_TABLES, Child, freePort, sleep, token, waitFor, within, WebSocket };

const here = path.dirname(fileURLToPath(import.meta.url));
const sourceDir = path.resolve(here, '..', '..');
export const binary = process.env.WSBRIDGE_BINARY ?? path.join(sourceDir, 'build', 'release', 'wsbridge');
const backendsDir = path.join(here, 'proxy_backends');
const PYTHON = '/usr/bin/python3';

export const MiB = 1 << 20;
// How far wsbridge's resident memory may grow while 100 MiB and more stream through it. The
// bodies are never held whole (docs/PROXY.md: 256 KiB buffered per direction at most), so what
// grows is buffers and allocator slack; a body held whole would pass this at once.
export const RSS_GROWTH_LIMIT = 64 * MiB;

export function tempDir() {
  return mkdtempSync(path.join(tmpdir(), 'wsbridge-proxy-'));
}
export { removeDir };

// ---------------------------------------------------------------------------------------------
// Bulk data: the same as proxy_backends/blocks.py. Block i is a fixed 1 MiB of SHA-256 digests
// whose first 8 bytes are i (big-endian): a lost, repeated or reordered block changes the hash.
export const BLOCK_SIZE = MiB;
const BASE = Buffer.concat(Array.from({ length: BLOCK_SIZE / 32 },
  (_, k) => createHash('sha256').update(`wsbridge-proxy-${k}`).digest()));

export function block(i, size = BLOCK_SIZE) {
  const b = Buffer.from(BASE);
  b.writeBigUInt64BE(BigInt(i), 0);
  return size === BLOCK_SIZE ? b : b.subarray(0, size);
}

export function* streamBlocks(total) {
  for (let i = 0; total > 0; ++i) {
    const n = Math.min(total, BLOCK_SIZE);
    yield block(i, n);
    total -= n;
  }
}

export function streamHash(total) {
  const h = createHash('sha256');
  for (const b of streamBlocks(total)) h.update(b);
  return h.digest('hex');
}

// The stalled-backend scenario (the backend's `stall` op reads nothing for a while): sends
// `count` blocks on `ws`, then samples the client's bufferedAmount after `settleMs` and again
// `sampleMs` later. `closedEarly` says how the tunnel ended if it did meanwhile.
export async function floodStalledBackend(ws, count, settleMs, sampleMs) {
  const opened = Date.now();
  let closedEarly;
  ws.closed.then((c) => { closedEarly = `closed after ${Date.now() - opened} ms: ${c.code} ${c.reason}`; });
  for (let i = 0; i < count; ++i) ws.send(block(i));
  await sleep(settleMs);
  const before = ws.bufferedAmount;
  await sleep(sampleMs);
  return { opened, before, afterwards: ws.bufferedAmount, closedEarly };
}

// The backend reads again: its report of what it got (messages, bytes, sha256), asked with "done".
export async function stalledBackendReport(ws) {
  ws.send('done');
  return JSON.parse((await nthMessage(ws, 0, 30000)).data);
}

export function writeStreamFile(file, total) {
  const fd = openSync(file, 'w');
  try {
    for (const b of streamBlocks(total)) writeSync(fd, b);
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Does the binary accept [[proxy]] tables? (Until it does, every proxy test fails at its start
// with the config error, which says so.)
export function checkConfig(file) {
  return new Promise((resolve) => {
    execFile(binary, ['--check-config', file], { env: { ...process.env, WSBRIDGE_TEST_JWT_SECRET: JWT_SECRET } },
      (err, stdout, stderr) => resolve({ ok: !err, output: `${stdout}${stderr}` }));
  });
}

// ---------------------------------------------------------------------------------------------
// A Python backend of proxy_backends/ (it prints "LISTENING <port>" once it accepts).
export class PythonBackend {
  constructor(script, args = []) {
    this.script = script;
    this.args = args;
  }
  async start() {
    this.child = new Child(PYTHON, ['-u', '-B', path.join(backendsDir, this.script), ...this.args]);
    await waitFor(() => {
      if (!this.child.running) throw new Error(`${this.script} exited: ${this.child.output}`);
      const m = /^LISTENING (\d+)$/m.exec(this.child.output);
      if (m) this.port = Number(m[1]);
      return m !== null;
    }, `${this.script} to listen`);
    return this;
  }
  get output() { return this.child?.output ?? ''; }
  get pid() { return this.child.proc.pid; }
  // Lines the backend printed that start with `prefix` (e.g. "CLOSED echo"), split on spaces;
  // `since`: only those after mark() returned it.
  lines(prefix, since = 0) {
    return this.output.slice(since).split('\n').filter((l) => l.startsWith(prefix)).map((l) => l.split(' '));
  }
  mark() { return this.output.length; }
  stop(signal = 'SIGTERM') { return this.child?.stop(signal); }
}

export const startHttpBackend = () => new PythonBackend('http_backend.py').start();
export const startWsBackend = () => new PythonBackend('ws_backend.py').start();

// ---------------------------------------------------------------------------------------------
// Debian's nginx as the legacy application: a static site (site/: index.html, api/local.txt and,
// when asked, big.bin of `bigFileBytes` stream bytes), and under /api/echo an answer made of
// what nginx saw of the request, one "name: value" line each (parseEcho), with custom response
// headers, two cookies and a caching header. /api/redirect and /api/relative-redirect redirect,
// /api/teapot answers 418, /api/empty 204, /api/limited 413 to a body over 1 KiB.
const ECHO_FIELDS = {
  method: '$request_method', uri: '$request_uri', host: '$http_host',
  xff: '$http_x_forwarded_for', xfp: '$http_x_forwarded_proto', xfh: '$http_x_forwarded_host',
  forwarded: '$http_forwarded', user: '$http_x_wsbridge_user',
  auth_method: '$http_x_wsbridge_auth_method', claims: '$http_x_wsbridge_claims',
  route: '$http_x_wsbridge_route', custom: '$http_x_custom', connection: '$http_connection',
  keep_alive: '$http_keep_alive', te: '$http_te', proxy_authorization: '$http_proxy_authorization',
  proxy_connection: '$http_proxy_connection', drop_me: '$http_x_drop_me',
  content_length: '$content_length', content_type: '$content_type', cookie: '$http_cookie',
};

export function parseEcho(body) {
  const out = {};
  for (const line of body.toString('utf8').split('\n')) {
    const i = line.indexOf(': ');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 2);
    else if (line.endsWith(':')) out[line.slice(0, -1)] = '';
  }
  return out;
}

export class Nginx {
  constructor(dir, { bigFileBytes = 0 } = {}) {
    this.dir = path.join(dir, 'nginx');
    this.site = path.join(this.dir, 'site');
    this.bigFileBytes = bigFileBytes;
  }
  async start() {
    const { dir, site } = this;
    mkdirSync(path.join(site, 'api'), { recursive: true });
    writeFileSync(path.join(site, 'index.html'), '<!doctype html><title>legacy app</title><p>served by nginx\n');
    writeFileSync(path.join(site, 'api', 'local.txt'), 'from nginx\n');
    if (this.bigFileBytes > 0) writeStreamFile(path.join(site, 'big.bin'), this.bigFileBytes);
    this.port = await freePort();
    const echo = Object.entries(ECHO_FIELDS).map(([k, v]) => `${k}: ${v}\\n`).join('');
    const conf = path.join(dir, 'nginx.conf');
    writeFileSync(conf, `
user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
daemon off;
events { worker_connections 512; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  types { text/html html; text/plain txt; application/octet-stream bin; }
  sendfile on;
  keepalive_timeout 65s;
  keepalive_requests 10000;
  server {
    listen 127.0.0.1:${this.port};
    root ${site};
    location / { }
    location /api/echo {
      default_type text/plain;
      add_header X-Backend nginx always;
      add_header Set-Cookie "session=abc123; Path=/; HttpOnly" always;
      add_header Set-Cookie "theme=dark; Path=/" always;
      add_header Cache-Control "private, max-age=60" always;
      return 200 "${echo}";
    }
    location = /api/redirect { return 302 https://elsewhere.example/landing?from=nginx; }
    location = /api/relative-redirect { absolute_redirect off; return 301 /api/echo/moved; }
    location = /api/teapot { default_type text/plain; return 418 "short and stout\\n"; }
    location = /api/empty { return 204; }
    location = /api/limited { client_max_body_size 1k; default_type text/plain; return 200 "ok\\n"; }
  }
}
`);
    this.child = new Child('/usr/sbin/nginx', ['-c', conf, '-p', dir]);
    await waitFor(async () => {
      if (!this.child.running) throw new Error(`nginx exited: ${this.child.output}`);
      return (await fetch(`http://127.0.0.1:${this.port}/index.html`).catch(() => null))?.ok;
    }, 'nginx');
    return this;
  }
  stop() { return this.child?.stop('SIGQUIT'); }
  get url() { return `http://127.0.0.1:${this.port}`; }
}

// ---------------------------------------------------------------------------------------------
// wsbridge with `toml` after its [server] table (`server`: more [server] keys). Its static_dir
// holds index.html ("wsbridge static"), apix.txt and api/local.txt ("static-only"), which the
// matching order of docs/PROXY.md must hide behind a covering [[proxy]] prefix.
export class ProxyBridge {
  constructor(dir, port, toml, { server = '' } = {}) {
    this.dir = dir;
    this.port = port;
    this.config = path.join(dir, `wsbridge-${port}.toml`);
    const site = path.join(dir, `static-${port}`);
    mkdirSync(path.join(site, 'api'), { recursive: true });
    writeFileSync(path.join(site, 'index.html'), '<!doctype html><title>wsbridge static</title>\n');
    writeFileSync(path.join(site, 'apix.txt'), 'static apix\n');
    writeFileSync(path.join(site, 'api', 'local.txt'), 'static-only\n');
    const threads = process.env.WSBRIDGE_TEST_THREADS || '2';
    writeFileSync(this.config, `[server]\nthreads = ${threads}\nshutdown_timeout = "1s"\n` +
      `static_dir = "${site}"\n${server}\n${toml}`);
  }
  async start() {
    const checked = await checkConfig(this.config);
    if (!checked.ok) throw new Error(`wsbridge refuses the config (no [[proxy]] support yet?):\n${checked.output}`);
    this.child = new Child(binary, ['--config', this.config],
      { ...process.env, WSBRIDGE_TEST_JWT_SECRET: JWT_SECRET });
    await waitFor(async () => {
      if (!this.child.running) throw new Error(`wsbridge exited:\n${this.child.output}`);
      return (await httpRequest(this.port, 'GET', '/healthz').catch(() => null))?.status === 200;
    }, 'wsbridge');
    return this;
  }
  get pid() { return this.child.proc.pid; }
  get running() { return this.child?.running ?? false; }
  get log() { return this.child?.output ?? ''; }
  stop() { return this.child?.stop(); }
  url(p) { return `http://127.0.0.1:${this.port}${p}`; }
  wsUrl(p) { return `ws://127.0.0.1:${this.port}${p}`; }
}

// Stops what a test file started and keeps the logs in E2E_ARTIFACTS (CMake sets it).
export async function stopAll(name, dir, { bridges = [], backends = [] } = {}) {
  for (const b of bridges) await b?.stop();
  for (const b of backends) await b?.stop();
  const artifacts = process.env.E2E_ARTIFACTS;
  if (artifacts) {
    mkdirSync(artifacts, { recursive: true });
    bridges.forEach((b, i) => b && writeFileSync(path.join(artifacts, `${name}.wsbridge${i}.log`), b.log));
    backends.forEach((b, i) => b?.child && writeFileSync(path.join(artifacts, `${name}.backend${i}.log`),
      b.child.output ?? ''));
  }
  if (dir) removeDir(dir);
}

// Proves wsbridge is still up and serving after a failure: /healthz, and a relayed request when
// `target` is given.
export async function assertAlive(bridge, target) {
  if (!bridge.running) throw new Error(`wsbridge died:\n${bridge.log}`);
  const health = await httpRequest(bridge.port, 'GET', '/healthz');
  if (health.status !== 200) throw new Error(`/healthz answered ${health.status}`);
  if (target) {
    const res = await httpRequest(bridge.port, 'GET', target);
    if (res.status !== 200) throw new Error(`${target} answered ${res.status}: ${res.body}`);
  }
}

// ---------------------------------------------------------------------------------------------
// One request on a fresh connection (never redirected), the whole body kept. Node sends
// "Connection: close" on such a connection; `keepAlive` sends "Connection: keep-alive" instead
// (as browsers do) and drops the connection once the answer is read. A body gets its
// Content-Length unless `headers` frame it (Node would send none for DELETE or OPTIONS).
// `localAddress`: the client's address (any of 127/8), to tell it from wsbridge's own.
export function httpRequest(port, method, target,
  { headers = {}, body, timeoutMs = 10000, keepAlive = false, localAddress } = {}) {
  const all = { ...headers };
  const has = (name) => Object.keys(all).some((k) => k.toLowerCase() === name);
  if (body !== undefined && !has('content-length') && !has('transfer-encoding')) all['Content-Length'] = Buffer.byteLength(body);
  if (keepAlive && !has('connection')) all.Connection = 'keep-alive';
  return within(new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers: all, agent: false, localAddress },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          if (keepAlive) req.destroy();
          resolve({ status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders,
            body: Buffer.concat(chunks) });
        });
        res.on('error', reject);
      });
    req.on('error', reject);
    req.end(body);
  }), timeoutMs, `${method} ${target}`);
}

// POSTs `total` bytes (`framing` "length" or "chunked") as fast as the connection takes them and
// resolves with the answer, { status, body }, or { error } when the connection failed before an
// answer was read (a response that was read wins over a later write error).
export function uploadOutcome(port, target, total, framing = 'length') {
  return within(new Promise((resolve) => {
    const headers = framing === 'length' ? { 'Content-Length': String(total) } : { 'Transfer-Encoding': 'chunked' };
    let failure;
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: target, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString(), writeError: failure }));
      res.on('error', (e) => resolve({ status: res.statusCode, error: e.message }));
    });
    req.on('error', (e) => {
      failure = e.message;
      setTimeout(() => resolve({ error: e.message }), 1000);  // unless the answer is read meanwhile
    });
    const piece = Buffer.alloc(64 * 1024, 0x7a);
    let sent = 0;
    const pump = () => {
      while (sent < total && !failure) {
        sent += piece.length;
        if (!req.write(piece)) { req.once('drain', pump); return; }
      }
      if (!failure) req.end();
    };
    pump();
  }), 15000, `the answer to a ${total}-byte upload to ${target}`);
}

// A raw client connection: bytes in as written, responses parsed as they arrive, so keep-alive,
// pipelining and framing are seen exactly.
export class RawConnection {
  static open(port, { localAddress } = {}) {
    return new Promise((resolve, reject) => {
      const socket = tcpConnect({ port, host: '127.0.0.1', localAddress });
      socket.once('connect', () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }
  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.closed = false;
    this.waiters = [];
    socket.on('data', (d) => { this.buffer = Buffer.concat([this.buffer, d]); this.wake(); });
    socket.on('error', (e) => { this.error = e; });
    socket.on('close', () => { this.closed = true; this.wake(); });
  }
  get localPort() { return this.socket.localPort; }
  wake() { for (const w of this.waiters.splice(0)) w(); }
  write(data) { this.socket.write(data); }
  // A request: `head` lines (request line and fields) and an optional body.
  send(lines, body) {
    this.write(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body ?? Buffer.alloc(0)]));
  }
  async more(deadline, what) {
    if (this.closed) throw Object.assign(new Error(`connection closed before ${what}`), { closed: true });
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => { this.waiters.push(r); setTimeout(r, left); });
  }
  // Resolves when the server closed the connection (true), or after `ms` (false).
  async closedWithin(ms) {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) {
      await new Promise((r) => { this.waiters.push(r); setTimeout(r, deadline - Date.now()); });
    }
    return this.closed;
  }
  // The next response: { status, headers (lower-case names; repeated ones as arrays), rawHeaders,
  // body, chunked }. `method` HEAD: no body whatever the fields say.
  async response({ method = 'GET', timeoutMs = 10000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    let end;
    while ((end = this.buffer.indexOf('\r\n\r\n')) < 0) await this.more(deadline, 'a response head');
    const lines = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
    this.buffer = this.buffer.subarray(end + 4);
    const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (!m) throw new Error(`not a status line: ${JSON.stringify(lines[0])}`);
    const status = Number(m[1]);
    const headers = {};
    const rawHeaders = [];
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      const name = line.slice(0, i);
      const value = line.slice(i + 1).trim();
      rawHeaders.push([name, value]);
      const k = name.toLowerCase();
      if (k in headers) headers[k] = [].concat(headers[k], value);
      else headers[k] = value;
    }
    const res = { status, reason: m[2], headers, rawHeaders, body: Buffer.alloc(0), chunked: false };
    if (method === 'HEAD' || (status >= 100 && status < 200) || status === 204 || status === 304) return res;
    const te = headers['transfer-encoding'];
    if (te !== undefined) {
      res.chunked = /chunked\s*$/i.test(String(te));
      const parts = [];
      for (;;) {
        let nl;
        while ((nl = this.buffer.indexOf('\r\n')) < 0) await this.more(deadline, 'a chunk size');
        const size = parseInt(this.buffer.subarray(0, nl).toString('latin1').split(';')[0], 16);
        if (Number.isNaN(size)) throw new Error(`bad chunk size line ${this.buffer.subarray(0, nl)}`);
        if (size === 0) {
          // Trailers (none expected) up to the blank line.
          this.buffer = this.buffer.subarray(nl + 2);
          while ((nl = this.buffer.indexOf('\r\n')) !== 0) {
            if (nl > 0) this.buffer = this.buffer.subarray(nl + 2);
            else await this.more(deadline, 'the end of the chunked body');
          }
          this.buffer = this.buffer.subarray(2);
          break;
        }
        while (this.buffer.length < nl + 2 + size + 2) await this.more(deadline, 'a chunk');
        parts.push(this.buffer.subarray(nl + 2, nl + 2 + size));
        this.buffer = this.buffer.subarray(nl + 2 + size + 2);
      }
      res.body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      while (this.buffer.length < n) await this.more(deadline, `a ${n}-byte body`);
      res.body = this.buffer.subarray(0, n);
      this.buffer = this.buffer.subarray(n);
    } else {
      while (!this.closed) await this.more(deadline, 'the end of a body delimited by close').catch((e) => {
        if (!e.closed) throw e;
      });
      res.body = this.buffer;
      this.buffer = Buffer.alloc(0);
    }
    return res;
  }
  close() { this.socket.destroy(); }
}

// ---------------------------------------------------------------------------------------------
// wsbridge's resident memory, from /proc/<pid>/status. start() resets the peak (clear_refs 5,
// which makes VmHWM the current RSS) and samples VmRSS every 20 ms besides; stop() gives the
// baseline at start, the peak since and the growth.
export function memoryOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

export class RssProbe {
  constructor(pid) { this.pid = pid; }
  start() {
    try {
      writeFileSync(`/proc/${this.pid}/clear_refs`, '5');
      this.hwmReset = true;
    } catch {
      this.hwmReset = false;
    }
    this.baseline = memoryOf(this.pid).rss;
    this.peak = this.baseline;
    this.timer = setInterval(() => {
      try { this.peak = Math.max(this.peak, memoryOf(this.pid).rss); } catch { /* exited */ }
    }, 20);
    return this;
  }
  // The growth so far (sampled), without stopping.
  get growth() { return this.peak - this.baseline; }
  stop() {
    clearInterval(this.timer);
    if (this.hwmReset) this.peak = Math.max(this.peak, memoryOf(this.pid).hwm);
    return { baseline: this.baseline, peak: this.peak, growth: this.peak - this.baseline };
  }
}

export const mib = (n) => `${(n / MiB).toFixed(1)} MiB`;

// A sanitizer build of wsbridge (build/asan, build/tsan): its runtime keeps freed memory
// (ASan's quarantine, TSan's allocator), so RSS says nothing about buffering there. The release
// flavour checks the bound; the sanitizers check the same transfers for memory and thread errors.
export const sanitized = /\/(asan|tsan)\//.test(binary);

export function assertBoundedGrowth(assert, result, what) {
  if (sanitized) return;
  assert.ok(result.growth < RSS_GROWTH_LIMIT,
    `${what}: wsbridge's RSS grew by ${mib(result.growth)} (from ${mib(result.baseline)} to ` +
    `${mib(result.peak)}), over the ${mib(RSS_GROWTH_LIMIT)} a streamed relay may use`);
}

// ---------------------------------------------------------------------------------------------
// A `ws` client, resolved once open; rejected with { status, headers, body } when the server
// answered the upgrade with something else than 101 ('unexpected-response'), or with the error.
// ws.received: every message as { data: Buffer, binary }; ws.closed: { code, reason } once closed.
export function openWebSocket(url,
  { protocols, headers, perMessageDeflate = false, timeoutMs = 8000, onMessage, localAddress,
    rejectUnauthorized } = {}) {
  const ws = new WebSocket(url, protocols,
    { headers, perMessageDeflate, maxPayload: 256 * MiB, localAddress, rejectUnauthorized });
  ws.received = [];
  ws.closed = new Promise((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  ws.on('message', onMessage ?? ((data, binary) => ws.received.push({ data: Buffer.from(data), binary })));
  return within(new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (req, res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        reject(Object.assign(new Error(`upgrade answered ${res.statusCode}`), {
          status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        req.destroy();
      });
    });
    ws.once('error', (e) => reject(e));
  }), timeoutMs, `the upgrade of ${url}`);
}

// The next message `ws` receives after the `count` it has (resolves with it).
export async function nthMessage(ws, n, timeoutMs = 8000) {
  await waitFor(() => ws.received.length > n, `message #${n + 1} on the WebSocket`, timeoutMs);
  return ws.received[n];
}
