// What the tests of web/wsbridge.js' fallback transports (docs/FALLBACK.md) share: a hostile HTTP
// proxy of their own in front of the bridge (WebSocket upgrades answered 101 and then nothing, or
// passed on; POST answers swallowed after the bridge applied them), a sessionStorage stand-in,
// and a WsbridgeSocket that collects what it receives. The bridge itself is the real wsbridge
// (fallback_client.test.mjs) or fallback_fake_server.mjs (fallback_client_unit.test.mjs).
import { createServer, request as httpRequest } from 'node:http';
import { connect as tcpConnect } from 'node:net';
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { EventSource } from 'eventsource';
import { WsbridgeSocket } from '../../web/wsbridge.js';
import { FakeFallbackServer } from './fallback_fake_server.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(check, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

// A fallback_fake_server.mjs of one test's own, with the welcome's heartbeat and poll_timeout (s)
// that test needs; stopped after it.
export async function fakeServer(t, { heartbeatS = 1, pollTimeoutS = 2 } = {}) {
  const fake = await new FakeFallbackServer().start();
  fake.heartbeatS = heartbeatS;
  fake.pollTimeoutS = pollTimeoutS;
  t.after(() => fake.stop());
  return fake;
}

// sessionStorage as a page has it, for one test.
export class MemoryStorage {
  constructor() { this.map = new Map(); }
  getItem(k) { return this.map.has(k) ? this.map.get(k) : null; }
  setItem(k, v) { this.map.set(k, String(v)); }
  removeItem(k) { this.map.delete(k); }
}

// Node 20 has no WebSocket of its own. SSE is read over fetch by default (web/wsbridge-sse.js);
// the `eventsource` package (the WHATWG EventSource) is for the tests of an EventSource given.
export const NODE_TRANSPORT_OPTIONS = { WebSocket };
export { EventSource };

// An HTTP proxy to the bridge on its own port. `upgrades`: "pass" (the default), "stall" (101
// with a valid Sec-WebSocket-Accept, then nothing either way: what a broken proxy does) or
// "refuse-resume" (404 to an upgrade that would move a fallback session, `_wsb=resume`; the
// others pass). `upgradeDelayMs`: how long an upgrade that passes waits before it goes on to the
// bridge. `upgradeUrls`: the URL of every upgrade.
// `dropPostAnswers`: how many of the next POST answers to swallow (the bridge got and applied the
// POST; the client sees its connection die). `holdPostAnswers`: how many to hold for ever (the
// bridge applied the POST; the client's request stays open, unanswered). `stallStreams`: how many
// of the next SSE streams to stall after their first chunk (the welcome): nothing more of them
// passes, and their connection stays open. `streams`: the URL of every SSE request.
export class HostileProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.upgrades = 'pass';
    this.dropPostAnswers = 0;
    this.holdPostAnswers = 0;
    this.stallStreams = 0;
    this.streams = [];
    this.upgradeCount = 0;
    this.upgradeUrls = [];
    this.upgradeDelayMs = 0;
    this.posts = [];
    this.sockets = new Set();
    this.server = createServer((req, res) => this.forward(req, res));
    this.server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    this.server.on('connection', (s) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); });
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = this.server.address().port;
    return this;
  }

  url(route) { return `ws://127.0.0.1:${this.port}${route}`; }

  forward(req, res) {
    const isPost = req.method === 'POST';
    const isStream = req.url.startsWith('/_wsbridge/sse/');
    if (isStream) this.streams.push(req.url);
    const stall = isStream && this.stallStreams > 0;
    if (stall) this.stallStreams -= 1;
    const up = httpRequest({ host: '127.0.0.1', port: this.targetPort, method: req.method, path: req.url,
      headers: req.headers }, (upRes) => {
      if (isPost && this.dropPostAnswers > 0) {
        this.dropPostAnswers -= 1;
        upRes.resume();
        upRes.on('end', () => req.socket.destroy());
        return;
      }
      if (isPost && this.holdPostAnswers > 0) {
        this.holdPostAnswers -= 1;
        upRes.resume();
        return;
      }
      res.writeHead(upRes.statusCode, upRes.headers);
      res.flushHeaders();
      if (stall) {
        let first = true;
        upRes.on('data', (chunk) => { if (first) res.write(chunk); first = false; });
        return;
      }
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    if (isPost) {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => this.posts.push(Buffer.concat(chunks)));
    }
    req.pipe(up);
  }

  upgrade(req, socket, head) {
    this.upgradeCount += 1;
    this.upgradeUrls.push(req.url);
    if (this.upgrades === 'refuse-resume' && new URL(req.url, 'http://x').searchParams.get('_wsb') === 'resume') {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    if (this.upgrades === 'stall') {
      const accept = createHash('sha1')
        .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
      socket.on('error', () => {});
      return; // and then nothing, either way
    }
    socket.on('error', () => {});
    setTimeout(() => this.passUpgrade(req, socket, head), this.upgradeDelayMs);
  }

  passUpgrade(req, socket, head) {
    if (socket.destroyed) return;
    const up = tcpConnect(this.targetPort, '127.0.0.1', () => {
      let head0 = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) head0 += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(`${head0}\r\n`);
      if (head.length) up.write(head);
      socket.pipe(up).pipe(socket);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  }

  // Ends every connection through it (streams, polls, WebSockets).
  cutAll() { for (const s of this.sockets) s.destroy(); }

  async stop() {
    this.cutAll();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

// A WsbridgeSocket with its messages, closes and transport kept; `next()` waits for a message.
export class Collector {
  constructor(url, options = {}) {
    this.messages = [];
    this.closes = [];
    this.lost = [];
    this.socket = new WsbridgeSocket(url, { ...NODE_TRANSPORT_OPTIONS, ...options });
    this.socket.binaryType = 'arraybuffer';
    this.opened = new Promise((resolve, reject) => {
      this.socket.onopen = () => resolve(this.socket.transport);
      this.socket.onclose = (e) => { this.closes.push(e); reject(new Error(`closed ${e.code} ${e.reason}`)); };
    });
    this.opened.catch(() => {});
    this.socket.onmessage = (e) => this.messages.push(e.data);
    this.socket.onlost = (l) => this.lost.push(l);
  }

  async next(timeoutMs = 5000) {
    await waitFor(() => this.messages.length > 0, 'a message', timeoutMs);
    return this.messages.shift();
  }

  close() { this.socket.close(); }
}

export const bytesOf = (data) => Buffer.from(new Uint8Array(data));
