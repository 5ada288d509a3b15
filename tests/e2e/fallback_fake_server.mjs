// A stand-in for wsbridge's fallback transports, written from docs/FALLBACK.md alone, so that
// web/wsbridge.js' fallbacks are tested without the server binary (fallback_client_unit.test.mjs;
// fallback_client.test.mjs runs the same scenarios against the real wsbridge). Two routes:
//   /echo   every message back, with its type
//   /mqtt   a tiny JSON pub/sub speaking the part of docs/PROTOCOL.md the client uses (status,
//           subscribe, unsubscribe, publish fanned out to every session, ping, ack)
// A session is the same on every transport: a WebSocket, an SSE stream or polls down, POSTs up.
// A WebSocket upgrade with `_wsb=resume&s=TOKEN&last=N` takes a fallback session over (404 when
// the token names no open fallback session of that route). `close(session, code, reason)` ends a
// session as the server would (a close frame, or a close record on its stream, poll, or next
// request; a POST after it gets 410 with the record). An SSE stream gets a heartbeat comment every
// `heartbeatS` seconds (1 by default, as fallback_client.test.mjs configures the real bridge).
// Hostile behaviours a test turns on: `stallStreams` (streams that bring their welcome and then
// nothing) and `emptyPollsAtOnce` (polls answered at once with nothing instead of being held).
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { topicMatches } from '../../web/wsbridge.js';

const MOVED = { type: 'moved', transport: 'websocket' };

function parseBody(buf) {
  const eol = buf.indexOf(10);
  const first = Number(buf.subarray(0, eol).toString('latin1'));
  const records = [];
  let pos = eol + 1;
  while (pos < buf.length) {
    const kind = String.fromCharCode(buf[pos]);
    const colon = buf.indexOf(58, pos);
    const len = Number(buf.subarray(pos + 1, colon).toString('latin1'));
    records.push({ kind, bytes: buf.subarray(colon + 1, colon + 1 + len) });
    pos = colon + 1 + len;
  }
  if (!Number.isInteger(first) || pos !== buf.length) throw new Error('malformed');
  return { first, records };
}

class Session {
  constructor(server, route, transport) {
    this.server = server;
    this.route = route;
    this.transport = transport;
    this.conn = ++server.lastConn;
    this.token = `v1.${this.conn}.9999999999.fake`;
    this.nextId = 1;
    this.buffer = []; // {id, binary, bytes}
    this.expected = 1;
    this.subs = new Set();
    this.ws = null;
    this.sse = null;
    this.waiter = null; // a poll waiting for messages
    this.closed = false;
    this.closeRecord = null; // set when the server closed it: told to the next request that asks
    this.createdAt = Date.now();
    server.sessions.set(this.token, this);
    if (route === '/mqtt') this.sendJson({ type: 'status', upstream: 'up' });
  }

  welcome(last = this.nextId - 1) {
    return JSON.stringify({ type: 'welcome', session: this.token, conn: this.conn, transport: this.transport,
      last, heartbeat: this.server.heartbeatS, poll_timeout: this.server.pollTimeoutS });
  }

  send(bytes, binary) {
    if (this.ws) { this.ws.send(bytes, { binary }); return; }
    const m = { id: this.nextId++, binary, bytes: Buffer.from(bytes) };
    this.buffer.push(m);
    this.server.sent.push(m);
    if (this.sse) this.writeEvent(this.sse, m);
    if (this.waiter) this.waiter();
  }

  sendJson(obj) { this.send(Buffer.from(JSON.stringify(obj)), false); }

  attach(ws) {
    this.ws = ws;
    this.transport = 'websocket';
    ws.on('message', (data, binary) => this.receive(data, binary));
    ws.on('close', () => { this.closed = true; });
  }

  // A WebSocket takes the session over (`_wsb=resume`): the welcome, what the client has not had
  // (from `last` + 1), then everything else; the request that carried it is told, and ends.
  moveTo(ws, last) {
    const unsent = this.buffer.filter((x) => x.id > last);
    const from = unsent[0]?.id ?? this.nextId;
    const welcome = { type: 'welcome', conn: this.conn, transport: 'websocket', resumed: true, from };
    if (from > last + 1) welcome.lost = { from: last + 1, to: from - 1 };
    ws.send(JSON.stringify(welcome));
    for (const x of unsent) ws.send(x.bytes, { binary: x.binary });
    this.buffer = [];
    this.attach(ws);
    this.server.moves += 1;
    if (this.sse) {
      this.sse.end(`id: ${this.nextId - 1}\nevent: control\ndata: ${JSON.stringify(MOVED)}\n\n`);
      this.sse = null;
    }
    this.waiter?.(); // a poll in flight answers `moved`
  }

  // The server ends the session. `tell`: on the request carrying it now (else only on the next).
  close(code, reason, { tell = true } = {}) {
    this.closed = true;
    this.closeRecord = { type: 'close', code, reason };
    if (this.ws) { this.ws.close(code, reason); return; }
    if (!tell) return;
    if (this.sse) {
      this.sse.end(`id: ${this.nextId - 1}\nevent: control\ndata: ${JSON.stringify(this.closeRecord)}\n\n`);
      this.sse = null;
    }
    this.waiter?.();
  }

  // A poll answer with the close record after what is still buffered.
  closeBody() {
    const rec = JSON.stringify(this.closeRecord);
    const parts = [Buffer.from(`${this.buffer[0]?.id ?? this.nextId}\n`)];
    for (const x of this.buffer) parts.push(Buffer.from(`${x.binary ? 'b' : 't'}${x.bytes.length}:`), x.bytes);
    parts.push(Buffer.from(`c${Buffer.byteLength(rec)}:${rec}`));
    return Buffer.concat(parts);
  }

  writeEvent(res, m) {
    const text = m.bytes.toString('utf8');
    if (!m.binary && text !== '' && !text.includes('\r')) {
      res.write(`id: ${m.id}\n${text.split('\n').map((l) => `data: ${l}\n`).join('')}\n`);
    } else {
      res.write(`id: ${m.id}\nevent: frame\ndata: ${m.binary ? 'b' : 't'}${m.bytes.toString('base64')}\n\n`);
    }
  }

  receive(bytes, binary) {
    this.server.received.push({ conn: this.conn, bytes: Buffer.from(bytes), binary });
    if (this.route === '/echo') { this.send(bytes, binary); return; }
    const f = JSON.parse(Buffer.from(bytes).toString('utf8'));
    if (f.type === 'ping') this.sendJson({ type: 'pong', id: f.id });
    else if (f.type === 'subscribe') { this.subs.add(f.topic); this.sendJson({ type: 'ack', id: f.id }); }
    else if (f.type === 'unsubscribe') { this.subs.delete(f.topic); this.sendJson({ type: 'ack', id: f.id }); }
    else if (f.type === 'publish') {
      this.sendJson({ type: 'ack', id: f.id });
      for (const s of this.server.sessions.values()) {
        if (s.closed || s.route !== '/mqtt' || ![...s.subs].some((flt) => topicMatches(flt, f.topic))) continue;
        s.sendJson({ type: 'message', topic: f.topic, payload: f.payload, qos: 0, retain: false });
      }
    }
  }
}

export class FakeFallbackServer {
  constructor() {
    this.sessions = new Map();
    this.lastConn = 0;
    this.received = []; // every message from a client, in order
    this.sent = []; // every fallback message to a client
    this.moves = 0; // sessions a WebSocket took over
    this.heartbeatS = 1; // the welcome's `heartbeat`, and how often a stream gets `: hb`
    this.pollTimeoutS = 2; // the welcome's `poll_timeout`, and how long a poll is held
    // How late past poll_timeout an empty poll is answered (the real bridge: within its 1 s tick).
    this.pollLateMs = 0;
    this.polls = []; // every poll that waited: {conn, cut} (cut: its client went before the answer)
    // A test's own answer to POSTs: (session, body Buffer, res) => true when it answered.
    this.postHook = null;
    // A test's own answer to a resumed stream: (session, res) => true when it answered.
    this.resumedStreamHook = null;
    // A test's own answer to a session's poll (not the opening one): (session, res) => true when
    // it answered.
    this.pollHook = null;
    this.streams = []; // the URL of every SSE request
    // How many of the next SSE streams (opening or resumed; Infinity: all) stall after their
    // welcome, as behind a proxy that passes each stream's first chunk and then holds it open:
    // no heartbeat, no message (what comes for the session waits for its next request).
    this.stallStreams = 0;
    // How many of the next polls that find nothing to answer (Infinity: all) get their empty
    // answer at once instead of being held for poll_timeout (a proxy or a server that does not
    // hold them); `emptyAnswers` has {conn, at} for each.
    this.emptyPollsAtOnce = 0;
    this.emptyAnswers = [];
    this.server = createServer((req, res) => this.http(req, res).catch(() => res.destroy()));
    this.wss = new WebSocketServer({ noServer: true });
    this.server.on('upgrade', (req, socket, head) => {
      const url = new URL(req.url, 'http://x');
      const resume = url.searchParams.get('_wsb') === 'resume';
      const moving = resume ? this.sessions.get(url.searchParams.get('s')) : null;
      if (resume && (!moving || moving.closed || moving.ws || moving.route !== url.pathname)) {
        socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        if (moving) {
          moving.moveTo(ws, Number(url.searchParams.get('last') ?? 0));
          return;
        }
        const s = new Session(this, url.pathname, 'websocket');
        s.attach(ws);
        if (url.searchParams.get('_wsb') === 'welcome') ws.send(s.welcome());
        if (s.route === '/mqtt') ws.send(JSON.stringify({ type: 'status', upstream: 'up' }));
      });
    });
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = this.server.address().port;
    return this;
  }

  url(route) { return `ws://127.0.0.1:${this.port}${route}`; }

  async stop() {
    for (const s of this.sessions.values()) { s.sse?.destroy(); s.ws?.terminate(); }
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  // A POST's body applied to `session` (records it had skipped): {status, answer} to send back.
  // A postHook may apply one and then never answer (a bridge whose answer never comes).
  applyPost(session, buf) {
    let body;
    try { body = parseBody(buf); } catch { return { status: 400, answer: '' }; }
    if (body.first > session.expected) return { status: 409, answer: JSON.stringify({ expected: session.expected }) };
    body.records.forEach((r, i) => {
      if (body.first + i < session.expected) return; // applied before: a retried POST
      session.expected += 1;
      session.receive(r.bytes, r.kind === 'b');
    });
    return { status: 200, answer: JSON.stringify({ next: session.expected }) };
  }

  async http(req, res) {
    const url = new URL(req.url, 'http://x');
    const m = /^\/_wsbridge\/(sse|poll|send)(\/.*)$/.exec(url.pathname);
    const token = url.searchParams.get('s');
    const session = token ? this.sessions.get(token) : null;
    if (m && session?.closeRecord && !session.ws) {
      // Closed by the server: a POST gets 410 with the record, a stream or poll the record.
      const record = JSON.stringify(session.closeRecord);
      if (m[1] === 'send') {
        req.resume();
        res.writeHead(410, { 'Content-Type': 'application/json' }).end(record);
      } else if (m[1] === 'sse') {
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store' });
        res.end(`id: ${session.nextId - 1}\nevent: control\ndata: ${record}\n\n`);
      } else {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(session.closeBody());
      }
      return;
    }
    if (!m || (token && (!session || session.closed || session.ws))) {
      res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"error":"unknown_session"}');
      return;
    }
    const [, kind, route] = m;
    if (kind === 'send') {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      if (this.postHook?.(session, Buffer.concat(chunks), res)) return;
      const applied = this.applyPost(session, Buffer.concat(chunks));
      res.writeHead(applied.status, { 'Content-Type': 'application/json' }).end(applied.answer);
      return;
    }
    const s = session || new Session(this, route, kind === 'sse' ? 'sse' : 'polling');
    const last = Number(url.searchParams.get('last') ?? req.headers['last-event-id'] ?? 0);
    s.buffer = s.buffer.filter((x) => x.id > last);
    if (kind === 'sse') {
      this.streams.push(req.url);
      if (session && this.resumedStreamHook?.(session, res)) return;
      s.sse?.destroy();
      s.sse = null;
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store' });
      res.write(`id: ${s.nextId - 1}\nevent: control\ndata: ${s.welcome()}\n\n`);
      if (this.stallStreams > 0) {
        this.stallStreams -= 1;
        return; // and then nothing, the connection left open
      }
      for (const x of s.buffer) s.writeEvent(res, x);
      s.sse = res;
      const heartbeat = setInterval(() => {
        if (!res.writableEnded && !res.destroyed) res.write(': hb\n\n');
      }, this.heartbeatS * 1000);
      res.on('close', () => {
        clearInterval(heartbeat);
        if (s.sse === res) s.sse = null;
      });
      return;
    }
    // Polling: the opening request gets the welcome; later ones wait for messages.
    if (session && this.pollHook?.(session, res)) return;
    if (session && s.buffer.length === 0 && this.emptyPollsAtOnce > 0) {
      this.emptyPollsAtOnce -= 1;
      this.emptyAnswers.push({ conn: s.conn, at: Date.now() });
    } else if (session && s.buffer.length === 0) {
      let cut = false;
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, this.pollTimeoutS * 1000 + this.pollLateMs);
        s.waiter = () => { clearTimeout(timer); resolve(); };
        res.on('close', () => { cut = true; clearTimeout(timer); resolve(); });
      });
      s.waiter = null;
      this.polls.push({ conn: s.conn, cut });
      if (s.closeRecord) {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(s.closeBody());
        return;
      }
      if (s.ws) { // moved meanwhile
        const moved = JSON.stringify(MOVED);
        res.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(`${s.nextId}\nc${moved.length}:${moved}`);
        return;
      }
    }
    const parts = [Buffer.from(`${s.buffer[0]?.id ?? s.nextId}\n`)];
    if (!session) parts.push(Buffer.from(`c${Buffer.byteLength(s.welcome())}:${s.welcome()}`));
    for (const x of s.buffer) parts.push(Buffer.from(`${x.binary ? 'b' : 't'}${x.bytes.length}:`), x.bytes);
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Cache-Control': 'no-store' }).end(Buffer.concat(parts));
  }
}
